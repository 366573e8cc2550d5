// Package gitopsconfig holds the types of a repository's auth: and author: sections, owned by
// package gitops (gitops.Auth and gitops.Signature are these types) and kept apart from it so that
// package config can decode them without importing go-git.
package gitopsconfig

// Auth holds a repository's credentials; every secret may be inline, ${ENV} or a ...File path,
// and the files are read at load (package config).
type Auth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"passwordFile" secretfile:"Password"`
	// SSHKeyFile is a PEM private key, read into SSHKey, with SSHKeyPassphrase when it is encrypted.
	SSHKeyFile       string `yaml:"sshKeyFile" secretfile:"SSHKey"`
	SSHKeyPassphrase string `yaml:"sshKeyPassphrase" secret:"true"`
	// KnownHostsFile is checked for the server's host key; empty means the user's default files.
	KnownHostsFile        string `yaml:"knownHostsFile"`
	InsecureIgnoreHostKey bool   `yaml:"insecureIgnoreHostKey"`
	// CAFile is extra PEM roots for HTTPS, read into CABundle.
	CAFile string `yaml:"caFile" secretfile:"CABundle"`
	// SSHKey and CABundle are the contents of SSHKeyFile and CAFile.
	SSHKey   []byte `yaml:"-"`
	CABundle []byte `yaml:"-"`
}

// Author is the commit author (and committer).
type Author struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// Package gitopsconfig holds the types of a repository's git settings (the repos[] entry's name,
// url, branches, auth:, author: and timeout), owned by package gitops (gitops.Config embeds Repo;
// gitops.Auth and gitops.Signature are Auth and Author) and kept apart from it so that package
// config can decode them without importing go-git.
package gitopsconfig

import "github.com/imagehook/imagehook/internal/confyaml"

// Repo is the git part of a repos[] entry: which repository, which branches, how it is reached
// and who commits. config.Repo embeds it inline (its keys sit in the entry itself) and
// gitops.Config embeds it, so that opening a repository passes the section instead of copying it.
type Repo struct {
	Name   string `yaml:"name"`
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	// PushBranch receives the commits instead of Branch, for teams that merge via pull requests.
	PushBranch string `yaml:"pushBranch"`
	Auth       Auth   `yaml:"auth"`
	Author     Author `yaml:"author"`
	// Timeout bounds each fetch and push.
	Timeout confyaml.Duration `yaml:"timeout"`
}

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

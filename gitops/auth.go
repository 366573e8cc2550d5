package gitops

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Auth holds a repository's credentials, already read from their files.
type Auth struct {
	Username string
	Password string
	// SSHKey is a PEM private key, with SSHKeyPassphrase when it is encrypted.
	SSHKey           []byte
	SSHKeyPassphrase string
	// KnownHostsFile is checked for the server's host key; empty means the user's default files.
	KnownHostsFile        string
	InsecureIgnoreHostKey bool
	// CABundle is extra PEM roots for HTTPS.
	CABundle []byte
	Log      *slog.Logger
}

func (a Auth) method(rawURL string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("url %s: %w", RedactURL(rawURL), err)
	}
	switch ep.Protocol {
	case "http", "https":
		user, pass := a.Username, a.Password
		if user == "" && ep.User != "" {
			user, pass = ep.User, ep.Password
		}
		if pass == "" && user == "" {
			return nil, nil
		}
		if user == "" {
			user = "imagehook" // a token alone: hosts ignore the name but need one
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case "ssh":
		if len(a.SSHKey) == 0 {
			return nil, errors.New("ssh url needs auth.sshKeyFile")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		if a.InsecureIgnoreHostKey {
			if a.Log != nil {
				a.Log.Warn("ssh host key checking is off for this repository (insecureIgnoreHostKey)", "host", ep.Host)
			}
			keys.HostKeyCallback = gossh.InsecureIgnoreHostKey()
		} else {
			var files []string
			if a.KnownHostsFile != "" {
				files = append(files, a.KnownHostsFile)
			}
			cb, err := gitssh.NewKnownHostsCallback(files...)
			if err != nil {
				return nil, fmt.Errorf("known_hosts: %w", err)
			}
			keys.HostKeyCallback = cb
		}
		return keys, nil
	case "file":
		return nil, nil
	}
	return nil, fmt.Errorf("url %s: unsupported protocol %q", RedactURL(rawURL), strings.ToLower(ep.Protocol))
}

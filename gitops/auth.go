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

	"github.com/imagehook/imagehook/gitops/gitopsconfig"
)

// Auth holds a repository's credentials, already read from their files: the repository's auth:
// section of the config file (its type lives in gitopsconfig, so that config need not import go-git).
type Auth = gitopsconfig.Auth

// authMethod is go-git's transport authentication for a; log hears that host keys are not checked.
func authMethod(a Auth, rawURL string, log *slog.Logger) (transport.AuthMethod, error) {
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
			if log != nil {
				log.Warn("ssh host key checking is off for this repository (insecureIgnoreHostKey)", "host", ep.Host)
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

package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSH is a git server over SSH: it runs git-upload-pack / git-receive-pack for the repositories
// under Root for clients holding the accepted key.
type SSH struct {
	Addr string
	// ClientKey is the PEM private key the server accepts.
	ClientKey []byte
	// KnownHosts is a known_hosts line for the server's host key.
	KnownHosts []byte
}

// NewSSH serves s.Root over SSH until the test ends.
func (s *Server) NewSSH(t testing.TB) *SSH {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := gossh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	accepted, _ := gossh.NewPublicKey(clientPub)
	block, err := gossh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := &ssh.Server{
		Handler: func(sess ssh.Session) {
			args := sess.Command()
			if len(args) != 2 || (args[0] != "git-upload-pack" && args[0] != "git-receive-pack") {
				_, _ = sess.Stderr().Write([]byte("only git is served here\n"))
				_ = sess.Exit(1)
				return
			}
			repo := filepath.Join(s.Root, filepath.Clean("/"+strings.Trim(args[1], "'")))
			cmd := exec.Command("git", strings.TrimPrefix(args[0], "git-"), repo)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = sess, sess, sess.Stderr()
			if err := cmd.Run(); err != nil {
				_ = sess.Exit(1)
				return
			}
			_ = sess.Exit(0)
		},
		PublicKeyHandler: func(_ ssh.Context, key ssh.PublicKey) bool {
			return ssh.KeysEqual(key, accepted)
		},
	}
	srv.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	return &SSH{
		Addr:       addr,
		ClientKey:  pem.EncodeToMemory(block),
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostSigner.PublicKey()) + "\n"),
	}
}

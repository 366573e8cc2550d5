package gitops

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/imagehook/imagehook/internal/gitserver"
)

// TestPropose: imagehook's branch always holds one commit on the current base; a base that moved
// is built upon again, a commit someone added to the branch is replaced only through the lease,
// nothing is pushed when nothing changes, and the base branch is never written.
func TestPropose(t *testing.T) {
	srv := gitserver.New(t, "bot", "s3cret")
	r := newRepo(t, srv, "s3cret")
	bare := srv.Bare("apps")
	ctx := context.Background()
	if _, err := r.Propose(ctx, "main", setFile("apps/a.yaml", "x\n")); !errors.Is(err, ErrBaseBranch) {
		t.Fatalf("proposing on the base branch: %v", err)
	}
	mainBefore := gitserver.Git(t, bare, "rev-parse", "main")
	c, err := r.Propose(ctx, "imagehook/web", setFile("apps/a.yaml", "one\n"))
	if err != nil || !c.Changed {
		t.Fatalf("first proposal: %+v %v", c, err)
	}
	if got := gitserver.Git(t, bare, "rev-parse", "imagehook/web^"); got != mainBefore {
		t.Errorf("branch built on %s, want main %s", got, mainBefore)
	}
	if gitserver.Git(t, bare, "rev-parse", "main") != mainBefore {
		t.Fatal("main was written")
	}
	// Someone commits to main: the next proposal is built on the new base, still one commit.
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", bare, ".")
	if err := os.WriteFile(filepath.Join(work, "NOTES.md"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "NOTES.md")
	gitserver.Git(t, work, "commit", "-q", "-m", "notes")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	moved := gitserver.Git(t, bare, "rev-parse", "main")
	if _, err := r.Propose(ctx, "imagehook/web", setFile("apps/a.yaml", "two\n")); err != nil {
		t.Fatal(err)
	}
	if got := gitserver.Git(t, bare, "rev-parse", "imagehook/web^"); got != moved {
		t.Errorf("branch built on %s, want the moved main %s", got, moved)
	}
	if got := gitserver.Git(t, bare, "show", "imagehook/web:apps/a.yaml"); got != "two" {
		t.Errorf("branch holds %q", got)
	}
	tip := gitserver.Git(t, bare, "rev-parse", "imagehook/web")
	// An edit that changes nothing on the base pushes nothing.
	if c, err := r.Propose(ctx, "imagehook/web", func(fs.FS) (map[string][]byte, string, error) { return nil, "", nil }); err != nil || c.Changed {
		t.Fatalf("empty proposal: %+v %v", c, err)
	}
	if gitserver.Git(t, bare, "rev-parse", "imagehook/web") != tip {
		t.Error("an empty proposal moved the branch")
	}
}

// TestSSHSignedCommits signs with SSH keys of each kind and has git itself verify the pushed commit
// (gpg.format=ssh with an allowed-signers file, as GitHub, GitLab and Gitea verify it).
func TestSSHSignedCommits(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen (openssh-client) is needed by git verify-commit")
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tt := range []struct {
		name       string
		key        crypto.PrivateKey
		passphrase string
	}{{"ed25519", ed, ""}, {"ecdsa", ec, ""}, {"rsa", rs, ""}, {"ed25519 with passphrase", ed, "pa55"}} {
		t.Run(tt.name, func(t *testing.T) {
			var block *pem.Block
			var err error
			if tt.passphrase != "" {
				block, err = ssh.MarshalPrivateKeyWithPassphrase(tt.key, "imagehook", []byte(tt.passphrase))
			} else {
				block, err = ssh.MarshalPrivateKey(tt.key, "imagehook")
			}
			if err != nil {
				t.Fatal(err)
			}
			signer, err := NewSigner(pem.EncodeToMemory(block), tt.passphrase)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ssh.NewPublicKey(publicOf(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			srv := gitserver.New(t, "bot", "pw")
			url := srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
			r, err := Open(Config{Name: "apps", URL: url, Auth: Auth{Username: "bot", Password: "pw"}, Author: Signature{"imagehook", "imagehook@example.com"}, Signer: signer},
				filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.Apply(context.Background(), setFile("apps/a.yaml", "signed\n"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.Propose(context.Background(), "imagehook/web", setFile("apps/a.yaml", "proposed\n"))
			if err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(t.TempDir(), "allowed_signers")
			if err := os.WriteFile(allowed, []byte("imagehook@example.com "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			bare := srv.Bare("apps")
			for _, h := range []string{c.Hash, p.Hash} {
				out, err := gitserver.Command(bare, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", "-v", h).CombinedOutput()
				if err != nil || !strings.Contains(string(out), `Good "git" signature for imagehook@example.com`) {
					t.Errorf("git verify-commit %s: %v\n%s", h, err, out)
				}
			}
			// Another key's allowed-signers file must not verify it: the check is real.
			other, _, _ := ed25519.GenerateKey(rand.Reader) // the public half
			opub, _ := ssh.NewPublicKey(other)
			if err := os.WriteFile(allowed, []byte("imagehook@example.com "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(opub)))+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := gitserver.Command(bare, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", c.Hash).CombinedOutput(); err == nil {
				t.Errorf("verified with another key:\n%s", out)
			}
		})
	}
}

func publicOf(k crypto.PrivateKey) crypto.PublicKey {
	return k.(crypto.Signer).Public()
}

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

	"github.com/imagehook/imagehook/gitops/gitopsconfig"
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
	if _, err := r.Propose(ctx, "main", "", setFile("apps/a.yaml", "x\n")); !errors.Is(err, ErrBaseBranch) {
		t.Fatalf("proposing on the base branch: %v", err)
	}
	mainBefore := gitserver.Git(t, bare, "rev-parse", "main")
	c, err := r.Propose(ctx, "imagehook/web", "", setFile("apps/a.yaml", "one\n"))
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
	if _, err := r.Propose(ctx, "imagehook/web", c.Hash, setFile("apps/a.yaml", "two\n")); err != nil {
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
	if c, err := r.Propose(ctx, "imagehook/web", tip, func(fs.FS) (map[string][]byte, string, error) { return nil, "", nil }); err != nil || c.Changed {
		t.Fatalf("empty proposal: %+v %v", c, err)
	}
	if gitserver.Git(t, bare, "rev-parse", "imagehook/web") != tip {
		t.Error("an empty proposal moved the branch")
	}
}

// TestProposeKeepsAForeignCommit: while imagehook follows a pull request from its branch, a commit
// someone else pushed there is never replaced — Propose names it and leaves the branch as it is —
// while a commit of imagehook's own (identity and trailers: a push whose record a crash lost) is
// rebuilt over; with no pull request followed ("" head) the branch is imagehook's to rebuild.
func TestProposeKeepsAForeignCommit(t *testing.T) {
	srv := gitserver.New(t, "bot", "s3cret")
	r := newRepo(t, srv, "s3cret")
	bare := srv.Bare("apps")
	ctx := context.Background()
	first, err := r.Propose(ctx, "imagehook/web", "", setFile("apps/a.yaml", "one\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A reviewer adds a commit to imagehook's branch.
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", "-b", "imagehook/web", bare, ".")
	if err := os.WriteFile(filepath.Join(work, "apps/a.yaml"), []byte("reviewer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := gitserver.Command(work, "commit", "-q", "-am", "tweak the image")
	cmd.Env = append(cmd.Env, "GIT_AUTHOR_NAME=Rita Reviewer", "GIT_AUTHOR_EMAIL=rita@example.com", "GIT_COMMITTER_NAME=Rita Reviewer", "GIT_COMMITTER_EMAIL=rita@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	gitserver.Git(t, work, "push", "-q", "origin", "imagehook/web")
	theirs := gitserver.Git(t, bare, "rev-parse", "imagehook/web")

	_, err = r.Propose(ctx, "imagehook/web", first.Hash, setFile("apps/a.yaml", "two\n"))
	var foreign *ForeignCommitError
	if !errors.As(err, &foreign) || !errors.Is(err, ErrForeignCommit) || foreign.Tip != theirs ||
		foreign.Author != "Rita Reviewer <rita@example.com>" || foreign.Subject != "tweak the image" {
		t.Fatalf("propose over a reviewer's commit: %v", err)
	}
	if got := gitserver.Git(t, bare, "rev-parse", "imagehook/web"); got != theirs {
		t.Fatalf("the reviewer's commit was replaced by %s", got)
	}

	// imagehook's own commit, unknown to the caller (an older head), is rebuilt over.
	own := func(fsys fs.FS) (map[string][]byte, string, error) {
		files, msg, err := setFile("apps/a.yaml", "three\n")(fsys)
		return files, msg + "\nImagehook-Event: e1\n", err
	}
	mine, err := r.Propose(ctx, "imagehook/web", "", own)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Propose(ctx, "imagehook/web", first.Hash, setFile("apps/a.yaml", "four\n")); err != nil {
		t.Fatalf("propose over imagehook's own commit %s: %v", mine.Hash, err)
	}
	if got := gitserver.Git(t, bare, "show", "imagehook/web:apps/a.yaml"); got != "four" {
		t.Errorf("branch holds %q", got)
	}
}

// TestReadAt reads commits that are not the cached tip: a merge commit a later push buried, which
// the cache has not fetched yet, and one the cache had.
func TestReadAt(t *testing.T) {
	srv := gitserver.New(t, "bot", "s3cret")
	r := newRepo(t, srv, "s3cret")
	bare := srv.Bare("apps")
	ctx := context.Background()
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	before := gitserver.Git(t, bare, "rev-parse", "main")
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", bare, ".")
	commit := func(name string) string {
		if err := os.WriteFile(filepath.Join(work, name), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		gitserver.Git(t, work, "add", name)
		gitserver.Git(t, work, "commit", "-q", "-m", name)
		gitserver.Git(t, work, "push", "-q", "origin", "main")
		return gitserver.Git(t, bare, "rev-parse", "main")
	}
	merged := commit("NOTES.md")
	commit("LATER.md")
	for _, tt := range []struct {
		commit string
		notes  bool
	}{{merged, true}, {before, false}} {
		err := r.ReadAt(ctx, tt.commit, func(fsys fs.FS) error {
			_, err := fs.Stat(fsys, "NOTES.md")
			if (err == nil) != tt.notes {
				t.Errorf("%s: NOTES.md %v, want present %v", tt.commit, err, tt.notes)
			}
			if _, err := fs.Stat(fsys, "LATER.md"); err == nil {
				t.Errorf("%s: holds a later commit's file", tt.commit)
			}
			return nil
		})
		if err != nil {
			t.Errorf("read %s: %v", tt.commit, err)
		}
	}
	if err := r.ReadAt(ctx, strings.Repeat("1", 40), func(fs.FS) error { return nil }); err == nil {
		t.Error("read a commit that does not exist")
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
			r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: Auth{Username: "bot", Password: "pw"}, Author: Signature{Name: "imagehook", Email: "imagehook@example.com"}}, Signer: signer},
				filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "signed\n"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.Propose(context.Background(), "imagehook/web", "", setFile("apps/a.yaml", "proposed\n"))
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

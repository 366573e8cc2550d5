package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/imagehook/imagehook/gitops/gitopsconfig"
	"github.com/imagehook/imagehook/internal/gitserver"
)

func newRepo(t *testing.T, srv *gitserver.Server, password string) *Repo {
	t.Helper()
	url := srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
	r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: Auth{Username: srv.User, Password: password},
		Author: Signature{Name: "imagehook", Email: "imagehook@example.com"}}}, filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func setFile(name, content string) EditFunc {
	return func(fsys fs.FS) (map[string][]byte, string, error) {
		old, err := fs.ReadFile(fsys, name)
		if err == nil && string(old) == content {
			return nil, "", nil
		}
		return map[string][]byte{name: []byte(content)}, "set " + name + "\n", nil
	}
}

func TestApplyPushesOneCommit(t *testing.T) {
	srv := gitserver.New(t, "bot", "s3cret")
	r := newRepo(t, srv, "s3cret")
	c, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "kind: ConfigMap\nmetadata: {name: b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Changed {
		t.Fatal("no commit")
	}
	bare := srv.Bare("apps")
	if got := gitserver.Git(t, bare, "rev-parse", "main"); got != c.Hash {
		t.Errorf("remote main = %s, want %s", got, c.Hash)
	}
	if got := gitserver.Git(t, bare, "show", "main:apps/a.yaml"); got != "kind: ConfigMap\nmetadata: {name: b}" {
		t.Errorf("content = %q", got)
	}
	if got := gitserver.Git(t, bare, "show", "main:README.md"); got != "# readme" {
		t.Errorf("untouched file = %q", got)
	}
	gitserver.Git(t, bare, "fsck", "--strict")

	again, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "kind: ConfigMap\nmetadata: {name: b}\n"))
	if err != nil || again.Changed || again.Hash != c.Hash {
		t.Errorf("second apply = %+v, %v; want unchanged at %s", again, err, c.Hash)
	}
}

func TestApplyNewFileInNewDirectory(t *testing.T) {
	srv := gitserver.New(t, "bot", "pw")
	r := newRepo(t, srv, "pw")
	if _, err := r.CommitAndPush(context.Background(), setFile("x/y/z.yaml", "a: 1\n")); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, srv.Bare("apps"), "fsck", "--strict")
	if got := gitserver.Git(t, srv.Bare("apps"), "show", "main:x/y/z.yaml"); got != "a: 1" {
		t.Errorf("got %q", got)
	}
}

// TestApplyConflictKeepsOtherWriter pushes a competing commit between our fetch and our push: the
// push is rejected, the edit is re-applied on the new tip, and both commits are on the branch.
func TestApplyConflictKeepsOtherWriter(t *testing.T) {
	srv := gitserver.New(t, "bot", "pw")
	r := newRepo(t, srv, "pw")
	other := t.TempDir()
	gitserver.Git(t, other, "clone", "-q", srv.Bare("apps"), ".")
	calls := 0
	edit := func(fsys fs.FS) (map[string][]byte, string, error) {
		calls++
		if calls == 1 {
			if err := os.WriteFile(filepath.Join(other, "other.txt"), []byte("theirs\n"), 0o644); err != nil {
				return nil, "", err
			}
			gitserver.Git(t, other, "add", "-A")
			gitserver.Git(t, other, "commit", "-q", "-m", "other writer")
			gitserver.Git(t, other, "push", "-q", "origin", "main")
		}
		return setFile("apps/a.yaml", "ours\n")(fsys)
	}
	c, err := r.CommitAndPush(context.Background(), edit)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempts != 2 || calls != 2 {
		t.Errorf("attempts = %d, calls = %d; want 2, 2", c.Attempts, calls)
	}
	log := gitserver.Git(t, srv.Bare("apps"), "log", "--format=%s", "main")
	if !strings.HasPrefix(log, "set apps/a.yaml\nother writer\ninitial") {
		t.Errorf("log = %q", log)
	}
}

func TestApplyErrors(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		srv := gitserver.New(t, "bot", "pw")
		r := newRepo(t, srv, "wrong-password-123")
		_, err := r.CommitAndPush(context.Background(), setFile("a", "b"))
		if !errors.Is(err, ErrAuth) {
			t.Errorf("err = %v, want ErrAuth", err)
		}
		if strings.Contains(err.Error(), "wrong-password-123") {
			t.Errorf("error leaks the password: %v", err)
		}
	})
	t.Run("pre-receive hook", func(t *testing.T) {
		srv := gitserver.New(t, "bot", "pw")
		r := newRepo(t, srv, "pw")
		hook := filepath.Join(srv.Bare("apps"), "hooks", "pre-receive")
		if err := os.WriteFile(hook, []byte("#!/bin/sh\necho protected branch >&2\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := r.CommitAndPush(context.Background(), setFile("a", "b"))
		if !errors.Is(err, ErrRejected) {
			t.Errorf("err = %v, want ErrRejected", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		srv := gitserver.New(t, "bot", "pw")
		r := newRepo(t, srv, "pw")
		srv.Down.Store(true)
		if _, err := r.CommitAndPush(context.Background(), setFile("a", "b")); err == nil {
			t.Fatal("apply succeeded against a server that is down")
		}
		srv.Down.Store(false)
		if _, err := r.CommitAndPush(context.Background(), setFile("a", "b")); err != nil {
			t.Fatalf("apply after the server came back: %v", err)
		}
	})
}

func TestSeedAndFileRemote(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seed.git")
	if err := Seed(dir, "main", os.DirFS("testdata/repo"), Signature{Name: "q", Email: "q@example.com"}); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, dir, "fsck", "--strict")
	r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "q", URL: "file://" + dir, Branch: "main", Author: Signature{Name: "q", Email: "q@example.com"}}}, filepath.Join(t.TempDir(), "c"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "changed\n"))
	if err != nil || !c.Changed {
		t.Fatalf("apply = %+v, %v", c, err)
	}
	if got := gitserver.Git(t, dir, "show", "main:apps/a.yaml"); got != "changed" {
		t.Errorf("got %q", got)
	}
}

// TestSSH pushes over SSH with known_hosts checking, and refuses a server with another host key.
func TestSSH(t *testing.T) {
	srv := gitserver.New(t, "bot", "pw")
	srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
	sshd := srv.NewSSH(t)
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, sshd.KnownHosts, 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(knownHosts string) *Repo {
		r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: "ssh://git@" + sshd.Addr + "/apps.git", Branch: "main", Author: Signature{Name: "a", Email: "a@example.com"},
			Auth: Auth{SSHKey: sshd.ClientKey, KnownHostsFile: knownHosts}}}, filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	c, err := open(known).CommitAndPush(context.Background(), setFile("apps/a.yaml", "over ssh\n"))
	if err != nil || !c.Changed {
		t.Fatalf("apply over ssh: %+v %v", c, err)
	}
	if got := gitserver.Git(t, srv.Bare("apps"), "show", "main:apps/a.yaml"); got != "over ssh" {
		t.Errorf("got %q", got)
	}
	other := filepath.Join(dir, "other_known_hosts")
	wrong := strings.Replace(string(srv.NewSSH(t).KnownHosts), strings.Fields(string(srv.NewSSH(t).KnownHosts))[0], strings.Fields(string(sshd.KnownHosts))[0], 1)
	if err := os.WriteFile(other, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open(other).CommitAndPush(context.Background(), setFile("apps/a.yaml", "mitm\n")); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a wrong host key was accepted: %v", err)
	}
}

// TestPushBranch writes to a separate branch for review: created from main, then built upon;
// main never moves.
func TestPushBranch(t *testing.T) {
	srv := gitserver.New(t, "bot", "pw")
	url := srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
	r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", PushBranch: "imagehook/updates", Auth: Auth{Username: "bot", Password: "pw"},
		Author: Signature{Name: "a", Email: "a@example.com"}}}, filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	main := gitserver.Git(t, srv.Bare("apps"), "rev-parse", "main")
	if _, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "one\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CommitAndPush(context.Background(), setFile("apps/b.yaml", "two\n")); err != nil {
		t.Fatal(err)
	}
	bare := srv.Bare("apps")
	if got := gitserver.Git(t, bare, "rev-parse", "main"); got != main {
		t.Errorf("main moved")
	}
	if got := gitserver.Git(t, bare, "rev-list", "--count", "main..imagehook/updates"); got != "2" {
		t.Errorf("%s commits on the push branch, want 2", got)
	}
	if got := gitserver.Git(t, bare, "show", "imagehook/updates:apps/a.yaml"); got != "one" {
		t.Errorf("got %q", got)
	}
}

// TestSignedCommits signs with an OpenPGP key and verifies the pushed commit with its public key.
func TestSignedCommits(t *testing.T) {
	entity, err := openpgp.NewEntity("imagehook", "", "imagehook@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var priv, pub bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := entity.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := entity.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	signer, err := NewSigner(priv.Bytes(), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := gitserver.New(t, "bot", "pw")
	url := srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
	r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: Auth{Username: "bot", Password: "pw"}, Author: Signature{Name: "a", Email: "a@example.com"}}, Signer: signer},
		filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", "signed\n"))
	if err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, srv.Bare("apps"), "fsck", "--strict")
	commit, err := r.repo.CommitObject(plumbing.NewHash(c.Hash))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commit.Verify(pub.String()); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if !strings.Contains(gitserver.Git(t, srv.Bare("apps"), "cat-file", "commit", c.Hash), "-----BEGIN PGP SIGNATURE-----") {
		t.Error("the pushed commit carries no signature")
	}
}

// TestTreeFS checks the git-tree file system against the standard library's conformance test.
func TestTreeFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seed.git")
	if err := Seed(dir, "main", os.DirFS("testdata/repo"), Signature{Name: "q", Email: "q@example.com"}); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := repo.Head()
	c, _ := repo.CommitObject(head.Hash())
	tree, _ := c.Tree()
	if err := fstest.TestFS(newTreeFS(tree), "README.md", "apps/a.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestShallowCache: the flow's cache starts with the tip only; it still commits, pushes and reads
// the trailers of the commits it has, and a full-history cache sees everything.
func TestShallowCache(t *testing.T) {
	srv := gitserver.New(t, "bot", "s3cret")
	url := srv.NewRepo(t, "apps", os.DirFS("testdata/repo"))
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", strings.Replace(url, "http://", "http://bot:s3cret@", 1), ".")
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(work, "NOTES"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		gitserver.Git(t, work, "add", "NOTES")
		gitserver.Git(t, work, "commit", "-q", "-m", fmt.Sprintf("older %d\n\nImagehook-Event: old-%d", i, i))
	}
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	count := func(full bool) int {
		r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: Auth{Username: "bot", Password: "s3cret"},
			Author: Signature{Name: "imagehook", Email: "imagehook@example.com"}}, FullHistory: full}, filepath.Join(t.TempDir(), "cache"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.CommitAndPush(context.Background(), setFile("apps/a.yaml", fmt.Sprintf("kind: ConfigMap # %v\n", full))); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := r.Log(context.Background(), 0, func(LogCommit) bool { n++; return true }); err != nil {
			t.Fatalf("log of a shallow cache: %v", err)
		}
		return n
	}
	if n := count(false); n != 2 {
		t.Errorf("shallow cache sees %d commits, want the tip and its own commit", n)
	}
	if n := count(true); n != 6 {
		t.Errorf("full cache sees %d commits, want all 6", n)
	}
	gitserver.Git(t, srv.Bare("apps"), "fsck", "--strict")
}

// TestTornRefIsDropped: a process killed while go-git rewrote a ref leaves the file empty, which
// go-git then reads as "ref file is empty" on every fetch; the next open drops it and fetches again.
func TestTornRefIsDropped(t *testing.T) {
	srv := gitserver.New(t, "bot", "pw")
	r := newRepo(t, srv, "pw")
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(r.Dir(), "refs", "remotes", "origin", "main")
	if err := os.WriteFile(torn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Open(r.cfg, r.Dir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch after a torn ref: %v", err)
	}
	if _, err := again.Tip(); err != nil {
		t.Fatalf("tip after a torn ref: %v", err)
	}
}

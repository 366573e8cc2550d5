// Package gitops keeps a cached bare clone of each manifests repository and turns a set of file
// edits into a pushed commit with go-git: it fetches, builds the commit straight from objects (no
// worktree), pushes, and on a rejected push fetches and re-applies on the new tip.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/imagehook/imagehook/gitops/gitopsconfig"
	"github.com/imagehook/imagehook/internal/confyaml"
	redactpkg "github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/retry"
)

// Errors callers branch on.
var (
	// ErrConflict means the remote branch moved under us (non-fast-forward or a ref-update race):
	// fetch, re-apply and push again.
	ErrConflict = errors.New("push rejected: branch moved")
	// ErrRejected means the remote refused the push for another reason (a hook, permissions).
	ErrRejected = errors.New("push rejected")
	// ErrAuth means the credentials were refused.
	ErrAuth = errors.New("authentication failed")
)

var installFileTransport sync.Once

// Config describes one manifests repository.
type Config struct {
	// Repo is the repository's section (repos[]: name, url, branch, pushBranch, auth, author,
	// timeout). Branch is required (config defaults it to main); PushBranch, when set, receives
	// the commits instead of Branch (for teams that merge through pull requests): it is created
	// from Branch, then built upon. Timeout bounds each network operation (0: 2m).
	gitopsconfig.Repo
	// MaxAttempts bounds push retries on conflict.
	MaxAttempts int
	// Signer, when set, signs every commit.
	Signer *Signer
	// FullHistory fetches the whole history on the first fetch. Without it the first fetch is
	// shallow (the tip only): a 50,000-file repository with 20,000 commits then costs ~60 MB
	// instead of ~300 MB, and later fetches bring only what is new. The audit trail of commits older
	// than the first fetch is then read from a full-history cache (`imagehook history`).
	FullHistory bool
}

// Signature is a commit author: the repository's author: section (gitopsconfig.Author).
type Signature = gitopsconfig.Author

// Repo is one cached repository. CommitAndPush, Log and Read take turns (the updater's worker and a
// reconciler may both use it).
type Repo struct {
	mu   sync.Mutex
	cfg  Config
	dir  string
	repo *git.Repository
	auth transport.AuthMethod
	log  *slog.Logger
	// fresh is set while no event has been committed on a cache this process created.
	fresh bool
}

// Commit is the outcome of CommitAndPush.
type Commit struct {
	// Hash is the pushed commit, or the branch tip when nothing changed.
	Hash     string
	Changed  bool
	Attempts int
}

// Open prepares the cache for cfg under dir (created when missing; re-created when unreadable).
func Open(cfg Config, dir string, log *slog.Logger) (*Repo, error) {
	installFileTransport.Do(func() {
		// file:// remotes are served in-process instead of by running git-upload-pack.
		client.InstallProtocol("file", server.NewServer(server.NewFilesystemLoader(osfs.New(""))))
	})
	if cfg.Branch == "" {
		// The default (main) is the config's, set at load; a caller that builds a Config names it.
		return nil, fmt.Errorf("repo %s: no branch", cfg.Name)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = confyaml.Duration(2 * time.Minute)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	auth, err := authMethod(cfg.Auth, cfg.URL, log)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", cfg.Name, err)
	}
	r := &Repo{cfg: cfg, dir: dir, auth: auth, log: log.With("repo", cfg.Name)}
	if err := r.openCache(); err != nil {
		r.log.Warn("repository cache unreadable, re-creating", "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("repo %s: remove cache: %w", cfg.Name, err)
		}
		if err := r.openCache(); err != nil {
			return nil, fmt.Errorf("repo %s: %w", cfg.Name, err)
		}
	}
	return r, nil
}

// objectCacheSize bounds go-git's cache of decoded objects (its default is 96 MiB): events read a
// few trees and blobs each, and a big repository must not make the cache the biggest thing in
// memory.
const objectCacheSize = 16 << 20

func (r *Repo) openCache() error {
	dropTornRefs(r.dir, r.log)
	st := filesystem.NewStorageWithOptions(osfs.New(r.dir), newObjectCache(objectCacheSize), filesystem.Options{})
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, nil)
		r.fresh = true
	}
	if err != nil {
		return fmt.Errorf("open cache: %w", err)
	}
	_ = repo.DeleteRemote("origin")
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{r.cfg.URL}}); err != nil {
		return fmt.Errorf("set remote: %w", err)
	}
	r.repo = repo
	return nil
}

// dropTornRefs removes the empty ref files a process killed while writing one leaves in the cache
// (go-git truncates, then writes): go-git reads such a file as "ref file is empty" on every fetch
// for ever after. The cache is derived data; a ref removed is fetched again, and each is named.
func dropTornRefs(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(filepath.Join(dir, "refs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() == 0 {
			if err := os.Remove(path); err == nil {
				log.Warn("repository cache: removed a ref left empty by an interrupted write; it is fetched again", "ref", path)
			}
		}
		return nil
	})
}

// Name returns the repository's configured name.
func (r *Repo) Name() string { return r.cfg.Name }

// Dir returns the cache directory (a bare repository).
func (r *Repo) Dir() string { return r.dir }

// trackingRef is the cache's remote-tracking ref of branch.
func trackingRef(branch string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", branch)
}

// pushBranch is the branch commits go to.
func (c Config) pushBranch() string {
	if c.PushBranch != "" {
		return c.PushBranch
	}
	return c.Branch
}

// Fetch updates the cached branch from the remote.
func (r *Repo) Fetch(ctx context.Context) error { return r.fetch(ctx, r.cfg.Branch) }

func (r *Repo) fetch(ctx context.Context, branch string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.Timeout))
	defer cancel()
	spec := gitconfig.RefSpec(fmt.Sprintf("+refs/heads/%s:%s", branch, trackingRef(branch)))
	depth := 0
	opts := &git.FetchOptions{RemoteName: "origin", RefSpecs: []gitconfig.RefSpec{spec},
		Auth: r.auth, CABundle: r.cfg.Auth.CABundle, Tags: git.NoTags}
	if _, err := r.repo.Reference(trackingRef(branch), true); err != nil {
		if !r.cfg.FullHistory {
			depth = 1 // the first fetch of this branch: the tip is all the flow needs
		}
		// A first fetch can be the whole repository: say how far it is, and hold the heap closer
		// to what it keeps while go-git indexes the pack.
		defer duringFirstFill()()
		progress := &progressLog{log: r.log, interval: 5 * time.Second}
		defer progress.flush()
		opts.Progress = progress
		start := time.Now()
		r.log.Info("first fetch of the branch into an empty cache", "branch", branch, "shallow", depth > 0)
		defer func() {
			r.log.Info("first fetch done", "branch", branch, "took", time.Since(start).Round(time.Millisecond))
		}()
	}
	opts.Depth = depth
	err := r.repo.FetchContext(ctx, opts)
	if err != nil && depth > 0 && errors.Is(classify(err), errNoShallow) {
		// A server without shallow support (go-git's own file:// transport): fetch it all.
		opts.Depth = 0
		err = r.repo.FetchContext(ctx, opts)
	}
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", branch, classify(err))
	}
	return nil
}

// Tip returns the cached branch tip.
func (r *Repo) Tip() (*object.Commit, error) {
	ref, err := r.repo.Reference(trackingRef(r.cfg.Branch), true)
	if err != nil {
		return nil, fmt.Errorf("branch %s: %w", r.cfg.Branch, err)
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("branch %s: %w", r.cfg.Branch, err)
	}
	return c, nil
}

// EditFunc computes file edits on a read-only view of the branch tip. It is called again on the new
// tip after a conflict, so it must derive its edits from fsys alone. The view is also a Tip: the
// commit it shows and the history behind it.
type EditFunc func(fsys fs.FS) (files map[string][]byte, message string, err error)

// Tip is what the view an EditFunc is given offers besides its files: the commit it shows and that
// commit's history, so that an edit run again on a new tip can read what landed meanwhile.
type Tip interface {
	// Hash is the commit the view shows.
	Hash() string
	// Log walks the commits reachable from it, newest first, as Repo.Log does (without a fetch:
	// the view's commit is already here).
	Log(limit int, fn LogFunc) error
}

// tipFS is the view an EditFunc is given.
type tipFS struct {
	treeFS
	repo *git.Repository
	tip  plumbing.Hash
}

var _ Tip = tipFS{}

func (t tipFS) Hash() string { return t.tip.String() }

func (t tipFS) Log(limit int, fn LogFunc) error { return walk(t.repo, t.tip, limit, fn) }

// CommitAndPush fetches, runs edit on the branch tip, commits what it returns and pushes; on a conflict it
// fetches and runs edit again on the new tip, with jittered exponential backoff. It never force-pushes.
func (r *Repo) CommitAndPush(ctx context.Context, edit EditFunc) (Commit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryConflicts(ctx, func() (Commit, error) { return r.applyOnce(ctx, edit) })
}

// retryConflicts runs once until it does not lose a race. The first retry is immediate: the fetch
// it starts with already brings the new tip. Later ones back off, with jitter, so that two busy
// writers stop colliding.
func (r *Repo) retryConflicts(ctx context.Context, once func() (Commit, error)) (Commit, error) {
	var c Commit
	err := retry.Do(ctx, r.cfg.MaxAttempts, conflictBackoff, func(attempt int) (bool, error) {
		var err error
		c, err = once()
		c.Attempts = attempt
		if errors.Is(err, ErrConflict) {
			r.log.Info("push conflict, retrying on the new tip", "attempt", attempt, "err", err)
			return true, err
		}
		return false, err
	})
	if errors.Is(err, ErrConflict) {
		return Commit{Attempts: c.Attempts}, fmt.Errorf("gave up after %d attempts: %w", c.Attempts, err)
	}
	return c, err
}

// conflictBackoff spaces the retries of a push that lost a race.
var conflictBackoff = retry.Backoff{Min: 100 * time.Millisecond, Max: 30 * time.Second, Jitter: true}

func (r *Repo) applyOnce(ctx context.Context, edit EditFunc) (Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.Timeout))
	defer cancel()
	t0 := time.Now()
	ps, err := r.openPush(ctx, r.cfg.pushBranch())
	if err != nil {
		return Commit{}, err
	}
	defer ps.Close()
	// Build on the push branch when it exists, else start it from the branch.
	baseBranch, remoteTip := r.cfg.pushBranch(), ps.tip(r.cfg.pushBranch())
	old := remoteTip
	if remoteTip.IsZero() {
		baseBranch, remoteTip = r.cfg.Branch, ps.tip(r.cfg.Branch)
	}
	if remoteTip.IsZero() {
		return Commit{}, fmt.Errorf("push %s: %w", r.cfg.Branch, errNoBranch)
	}
	if r.fresh {
		// The first event on a cache this process created: its edit reads every file of the tip
		// once to build the manifests index, under the first fetch's lower collector target.
		defer duringFirstFill()()
	}
	// Fetch only when the remote moved past the cache (another writer, or the first run).
	if cached, err := r.repo.Reference(trackingRef(baseBranch), true); err != nil || cached.Hash() != remoteTip {
		if err := r.fetch(ctx, baseBranch); err != nil {
			return Commit{}, err
		}
	}
	tip, err := r.repo.CommitObject(remoteTip)
	if err != nil {
		// The advertised tip is newer than what the fetch brought (a push in between).
		return Commit{}, fmt.Errorf("%w: tip %s not fetched yet", ErrConflict, remoteTip)
	}
	t1 := time.Now()
	hash, objects, err := commitOn(r.repo, r.cfg, tip, edit)
	if err == nil {
		r.fresh = false // the edit has read what it needs once (the index is built)
	}
	if err != nil || hash.IsZero() {
		return Commit{Hash: tip.Hash.String()}, err
	}
	t2 := time.Now()
	if err := ps.send(ctx, r, old, hash, objects); err != nil {
		return Commit{}, err
	}
	r.log.Debug("git timings", "open", t1.Sub(t0), "edit and commit", t2.Sub(t1), "send", time.Since(t2))
	// Record the pushed commit as the tip so the next batch starts from it without a fetch.
	_ = r.repo.Storer.SetReference(plumbing.NewHashReference(trackingRef(r.cfg.pushBranch()), hash))
	return Commit{Hash: hash.String(), Changed: true}, nil
}

// commitOn runs edit on tip's tree and stores a commit of the files it returns on top of tip. It
// returns the commit and every object the commit added (what a push must carry), or the zero hash
// when the edit changes nothing.
func commitOn(repo *git.Repository, cfg Config, tip *object.Commit, edit EditFunc) (plumbing.Hash, []plumbing.Hash, error) {
	tree, err := tip.Tree()
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("read tree: %w", err)
	}
	files, msg, err := edit(tipFS{treeFS: newTreeFS(tree), repo: repo, tip: tip.Hash})
	if err != nil || len(files) == 0 {
		return plumbing.ZeroHash, nil, err
	}
	var written []plumbing.Hash
	treeHash, err := writeTree(repo.Storer, tree, files, &written)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("write tree: %w", err)
	}
	hash, err := storeCommit(repo, treeHash, []plumbing.Hash{tip.Hash}, cfg.Author, msg, cfg.Signer)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return hash, append(written, hash), nil
}

func storeCommit(repo *git.Repository, tree plumbing.Hash, parents []plumbing.Hash, author Signature, msg string, signer *Signer) (plumbing.Hash, error) {
	sig := object.Signature{Name: author.Name, Email: author.Email, When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents}
	if signer != nil {
		if err := signer.sign(c); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

// errNoShallow is a server that cannot serve a shallow fetch (go-git's own file:// transport).
var errNoShallow = errors.New("the server does not support shallow fetches")

// classify maps go-git's errors, whose texts are the only stable part, onto this package's sentinels:
// the one place in imagehook that reads an error's text (go-git's push and capability errors carry no
// type), so that everyone else branches with errors.Is.
// go-git reports a stale local view as "non-fast-forward update", and the server's report-status
// carries git's own reasons ("non-fast-forward", "fetch first", "failed to update ref").
func classify(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "non-fast-forward"), strings.Contains(msg, "fetch first"),
		strings.Contains(msg, "failed to update ref"), strings.Contains(msg, "cannot lock ref"),
		strings.Contains(msg, "failed to lock"):
		return fmt.Errorf("%w: %s", ErrConflict, redact(msg))
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: %s", ErrAuth, redact(msg))
	case strings.Contains(msg, "command error on"), strings.Contains(msg, "unpack error"):
		return fmt.Errorf("%w: %s", ErrRejected, redact(msg))
	case strings.Contains(msg, "capability"):
		return fmt.Errorf("%w: %s", errNoShallow, redact(msg))
	}
	return errors.New(redact(msg))
}

// redact removes credentials from any URL in s: the one rule, package redact's.
func redact(s string) string { return redactpkg.URLs(s) }

// RedactURL returns u with its user information masked, for logs and errors.
func RedactURL(u string) string { return redactpkg.URL(u) }

// Seed creates a bare repository at dir whose branch holds one commit with the files of fsys. The
// quickstart uses it to make a local manifests repository; it does nothing when dir already exists.
func Seed(dir, branch string, fsys fs.FS, author Signature) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	files := map[string][]byte{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		files[p] = data
		return err
	})
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	tree, err := writeTree(repo.Storer, nil, files, nil)
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	h, err := storeCommit(repo, tree, nil, author, "Seed the quickstart manifests\n", nil)
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	return repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref))
}

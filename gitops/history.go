package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// LogCommit is one commit of a branch's history, as the audit trail reads it.
type LogCommit struct {
	Hash      string
	Message   string
	Author    Signature
	Committer Signature
	When      time.Time
}

// LogFunc receives commits newest first; returning false stops the walk.
type LogFunc func(LogCommit) bool

// walk calls fn for the commits reachable from tip, newest committer time first, until fn returns
// false or limit commits were read (all when limit <= 0). A parent that is not in the store ends
// that line of history quietly: the flow's cache is shallow (it starts from the tip it first fetched).
func walk(repo *git.Repository, tip plumbing.Hash, limit int, fn LogFunc) error {
	start, err := repo.CommitObject(tip)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	queue := []*object.Commit{start}
	seen := map[plumbing.Hash]bool{tip: true}
	for n := 0; len(queue) > 0 && (limit <= 0 || n < limit); n++ {
		newest := 0
		for i, c := range queue {
			if c.Committer.When.After(queue[newest].Committer.When) {
				newest = i
			}
		}
		c := queue[newest]
		queue = append(queue[:newest], queue[newest+1:]...)
		if !fn(logCommit(c)) {
			return nil
		}
		for _, ph := range c.ParentHashes {
			if seen[ph] {
				continue
			}
			seen[ph] = true
			p, err := repo.CommitObject(ph)
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				continue // the boundary of a shallow cache
			}
			if err != nil {
				return fmt.Errorf("log: %w", err)
			}
			queue = append(queue, p)
		}
	}
	return nil
}

func logCommit(c *object.Commit) LogCommit {
	return LogCommit{Hash: c.Hash.String(), Message: c.Message, When: c.Committer.When,
		Author: Signature{Name: c.Author.Name, Email: c.Author.Email}, Committer: Signature{Name: c.Committer.Name, Email: c.Committer.Email}}
}

// OpenLog walks the history of the repository at path (bare or with a worktree) from HEAD.
func OpenLog(path string, limit int, fn LogFunc) error {
	repo, err := git.PlainOpen(path)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainOpenWithOptions(path, &git.PlainOpenOptions{DetectDotGit: true})
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	head, err := repo.Head()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	return walk(repo, head.Hash(), limit, fn)
}

// Log fetches the branch imagehook commits to and walks its last limit commits (all when limit <=
// 0), newest first. The fetch matters after a crash: a push may have landed after the cache last
// saw the branch.
func (r *Repo) Log(ctx context.Context, limit int, fn LogFunc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx, r.cfg.pushBranch()); err != nil {
		return err
	}
	ref, err := r.repo.Reference(trackingRef(r.cfg.pushBranch()), true)
	if err != nil {
		return err
	}
	return walk(r.repo, ref.Hash(), limit, fn)
}

// Read fetches the branch imagehook commits to and calls fn with a read-only view of its tip.
func (r *Repo) Read(ctx context.Context, fn func(fs.FS) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	branch := r.cfg.pushBranch()
	if _, err := r.repo.Reference(trackingRef(branch), true); err != nil {
		branch = r.cfg.Branch
	}
	if err := r.fetch(ctx, branch); err != nil {
		return err
	}
	ref, err := r.repo.Reference(trackingRef(branch), true)
	if err != nil {
		return fmt.Errorf("branch %s: %w", branch, err)
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return fmt.Errorf("branch %s: %w", branch, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read tree: %w", err)
	}
	return fn(treeFS{root: tree})
}

// ErrNotCached means the cache holds no tip of the branch yet (nothing was fetched since it was
// made): ReadCached does not fetch.
var ErrNotCached = errors.New("not fetched yet")

// ReadCached calls fn with the tip the cache holds of the branch imagehook commits to, and its
// commit hash, without fetching: the status page's read, which must cost no network round trip and
// hold the repository only as long as fn reads.
func (r *Repo) ReadCached(fn func(tip string, fsys fs.FS) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, err := r.repo.Reference(trackingRef(r.cfg.pushBranch()), true)
	if err != nil {
		if ref, err = r.repo.Reference(trackingRef(r.cfg.Branch), true); err != nil {
			return fmt.Errorf("branch %s: %w", r.cfg.Branch, ErrNotCached)
		}
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return fmt.Errorf("branch %s: %w", ref.Name().Short(), err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read tree: %w", err)
	}
	return fn(c.Hash.String(), treeFS{root: tree})
}

// Identity returns the author and committer of imagehook's commits in this repository.
func (r *Repo) Identity() Signature { return r.cfg.Author }

// Descends reports whether commit descendant is ancestor or has it in its history: a GitOps tool
// that synced a later commit has deployed this one too. The branch is fetched when the cache lacks
// the descendant.
func (r *Repo) Descends(ctx context.Context, descendant, ancestor string) (bool, error) {
	if descendant == ancestor {
		return true, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.repo.CommitObject(plumbing.NewHash(descendant))
	if err != nil {
		if err := r.fetch(ctx, r.cfg.Branch); err != nil {
			return false, err
		}
		if d, err = r.repo.CommitObject(plumbing.NewHash(descendant)); err != nil {
			return false, fmt.Errorf("commit %s: %w", descendant, err)
		}
	}
	a, err := r.repo.CommitObject(plumbing.NewHash(ancestor))
	if err != nil {
		return false, fmt.Errorf("commit %s: %w", ancestor, err)
	}
	return a.IsAncestor(d)
}

// LastChange returns the newest of the branch's last limit commits that changed file (its blob
// differs from its first parent's, or it appeared), as the cache's last fetch left the branch. ok
// is false when none of them did. Promotion reads it to name who changed a stage's value.
func (r *Repo) LastChange(file string, limit int) (c LogCommit, ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, err := r.repo.Reference(trackingRef(r.cfg.pushBranch()), true)
	if err != nil {
		return LogCommit{}, false, fmt.Errorf("last change of %s: %w", file, err)
	}
	blob := func(c *object.Commit) plumbing.Hash {
		tree, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash
		}
		e, err := tree.FindEntry(file)
		if err != nil {
			return plumbing.ZeroHash
		}
		return e.Hash
	}
	err = walk(r.repo, ref.Hash(), limit, func(lc LogCommit) bool {
		commit, err := r.repo.CommitObject(plumbing.NewHash(lc.Hash))
		if err != nil {
			return false
		}
		mine := blob(commit)
		var parent plumbing.Hash
		if len(commit.ParentHashes) > 0 {
			if p, err := r.repo.CommitObject(commit.ParentHashes[0]); err == nil {
				parent = blob(p)
			} else {
				return false // the shallow boundary: what changed here is not known
			}
		}
		if mine != parent {
			c, ok = lc, true
			return false
		}
		return true
	})
	return c, ok, err
}

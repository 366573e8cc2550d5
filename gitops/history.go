package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// walk calls fn for the commits reachable from tip, newest first, until fn returns false or
// limit commits were read (all when limit <= 0).
func walk(repo *git.Repository, tip plumbing.Hash, limit int, fn LogFunc) error {
	it, err := repo.Log(&git.LogOptions{From: tip, Order: git.LogOrderCommitterTime})
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	defer it.Close()
	for n := 0; limit <= 0 || n < limit; n++ {
		c, err := it.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if !fn(logCommit(c)) {
			return nil
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
	if err := r.fetch(ctx, r.pushBranch()); err != nil {
		return err
	}
	ref, err := r.repo.Reference(r.trackingRef(r.pushBranch()), true)
	if err != nil {
		return err
	}
	return walk(r.repo, ref.Hash(), limit, fn)
}

// Identity returns the author and committer of imagehook's commits in this repository.
func (r *Repo) Identity() Signature { return r.cfg.Author }

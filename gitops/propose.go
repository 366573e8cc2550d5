package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrBaseBranch refuses a proposal branch that is the base branch: imagehook force-pushes only
// its own branches.
var ErrBaseBranch = errors.New("the proposal branch is the base branch")

// ErrForeignCommit refuses to rebuild a proposal branch that ends in a commit imagehook did not
// push (a reviewer's): replacing it would drop that commit without anyone being told.
var ErrForeignCommit = errors.New("the branch ends in a commit imagehook did not push")

// ForeignCommitError names the commit a proposal would have replaced. It wraps ErrForeignCommit.
type ForeignCommitError struct {
	Branch string
	// Tip is the branch's commit; Author who made it ("name <email>") and Subject its first line.
	Tip, Author, Subject string
}

func (e *ForeignCommitError) Error() string {
	return fmt.Sprintf("branch %s: %v: %s by %s (%q)", e.Branch, ErrForeignCommit, short(e.Tip), e.Author, e.Subject)
}

func (e *ForeignCommitError) Unwrap() error { return ErrForeignCommit }

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

// Propose builds the edit on the base branch's tip, commits it, and pushes that commit to branch —
// imagehook's own branch for a pull request — replacing what the branch held, with a lease: the
// update applies only if the branch is still where the remote said it was a moment before, so a
// commit someone added to the branch meanwhile is never lost silently (the attempt is retried on
// the new state). The branch always holds one commit on top of the current base: a base that moved
// is not a conflict, the edit is simply made again on the new base. The base branch is never
// written. Nothing is pushed when the edit changes nothing.
//
// head is the commit imagehook last pushed to branch for a pull request it still follows ("" for
// none): while it is set, the branch is rebuilt only when it still ends there — or in a commit of
// imagehook's own identity and trailers, a push whose record a crash lost. Any other tip (a
// reviewer's commit) gives a *ForeignCommitError and the branch is left as it is.
func (r *Repo) Propose(ctx context.Context, branch, head string, edit EditFunc) (Commit, error) {
	if branch == r.cfg.Branch || branch == "" {
		return Commit{}, fmt.Errorf("propose on %q: %w", branch, ErrBaseBranch)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryConflicts(ctx, func() (Commit, error) { return r.proposeOnce(ctx, branch, head, edit) })
}

// ownTip checks that the branch's tip may be replaced (see Propose).
func (r *Repo) ownTip(ctx context.Context, branch, head string, tip plumbing.Hash) error {
	if head == "" || tip.IsZero() || tip.String() == head {
		return nil
	}
	c, err := r.repo.CommitObject(tip)
	if err != nil {
		if err := r.fetch(ctx, branch); err != nil {
			return err
		}
		if c, err = r.repo.CommitObject(tip); err != nil {
			return fmt.Errorf("%w: tip %s of %s not fetched yet", ErrConflict, tip, branch)
		}
	}
	if ownCommit(r.cfg.Author, c) {
		return nil
	}
	subject, _, _ := strings.Cut(c.Message, "\n")
	return &ForeignCommitError{Branch: branch, Tip: tip.String(), Author: c.Author.Name + " <" + c.Author.Email + ">", Subject: subject}
}

// ownCommit reports whether imagehook made c: its committer is imagehook's identity and its
// message ends in imagehook's trailers.
func ownCommit(author Signature, c *object.Commit) bool {
	return c.Committer.Name == author.Name && c.Committer.Email == author.Email &&
		strings.Contains(c.Message, "\n"+trailerEvent+": ")
}

// trailerEvent is audit.TrailerEvent (audit reads gitops' history, so gitops cannot import it).
const trailerEvent = "Imagehook-Event"

// ReadAt calls fn with a read-only view of commit (a pull request's merge commit), fetching the
// base branch when the cache lacks it.
func (r *Repo) ReadAt(ctx context.Context, commit string, fn func(fs.FS) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	hash := plumbing.NewHash(commit)
	c, err := r.repo.CommitObject(hash)
	if err != nil {
		if err := r.fetch(ctx, r.cfg.Branch); err != nil {
			return err
		}
		if c, err = r.repo.CommitObject(hash); err != nil {
			return fmt.Errorf("commit %s: not on %s: %w", commit, r.cfg.Branch, err)
		}
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read tree of %s: %w", commit, err)
	}
	return fn(treeFS{root: tree})
}

func (r *Repo) proposeOnce(ctx context.Context, branch, head string, edit EditFunc) (Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.Timeout))
	defer cancel()
	ps, err := r.openPush(ctx, branch)
	if err != nil {
		return Commit{}, err
	}
	defer ps.Close()
	baseTip, lease := ps.tip(r.cfg.Branch), ps.tip(branch)
	if baseTip.IsZero() {
		return Commit{}, fmt.Errorf("propose on %s: %w", r.cfg.Branch, errNoBranch)
	}
	if err := r.ownTip(ctx, branch, head, lease); err != nil {
		return Commit{}, err
	}
	if cached, err := r.repo.Reference(trackingRef(r.cfg.Branch), true); err != nil || cached.Hash() != baseTip {
		if err := r.fetch(ctx, r.cfg.Branch); err != nil {
			return Commit{}, err
		}
	}
	tip, err := r.repo.CommitObject(baseTip)
	if err != nil {
		return Commit{}, fmt.Errorf("%w: tip %s not fetched yet", ErrConflict, baseTip)
	}
	hash, objects, err := commitOn(r.repo, r.cfg, tip, edit)
	if err != nil || hash.IsZero() {
		return Commit{Hash: tip.Hash.String()}, err
	}
	// The remote has the base; the new commit and the objects it added are all it lacks.
	if err := ps.send(ctx, r, lease, hash, objects); err != nil {
		return Commit{}, err
	}
	_ = r.repo.Storer.SetReference(plumbing.NewHashReference(trackingRef(branch), hash))
	return Commit{Hash: hash.String(), Changed: true}, nil
}

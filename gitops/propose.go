package gitops

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// ErrBaseBranch refuses a proposal branch that is the base branch: imagehook force-pushes only
// its own branches.
var ErrBaseBranch = errors.New("the proposal branch is the base branch")

// Propose builds the edit on the base branch's tip, commits it, and pushes that commit to branch —
// imagehook's own branch for a pull request — replacing what the branch held, with a lease: the
// update applies only if the branch is still where the remote said it was a moment before, so a
// commit someone added to the branch meanwhile is never lost silently (the attempt is retried on
// the new state). The branch always holds one commit on top of the current base: a base that moved
// is not a conflict, the edit is simply made again on the new base. The base branch is never
// written. Nothing is pushed when the edit changes nothing.
func (r *Repo) Propose(ctx context.Context, branch string, edit EditFunc) (Commit, error) {
	if branch == r.cfg.Branch || branch == "" {
		return Commit{}, fmt.Errorf("propose on %q: %w", branch, ErrBaseBranch)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryConflicts(ctx, func() (Commit, error) { return r.proposeOnce(ctx, branch, edit) })
}

func (r *Repo) proposeOnce(ctx context.Context, branch string, edit EditFunc) (Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
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
	if cached, err := r.repo.Reference(r.remoteRef(), true); err != nil || cached.Hash() != baseTip {
		if err := r.fetch(ctx, r.cfg.Branch); err != nil {
			return Commit{}, err
		}
	}
	tip, err := r.repo.CommitObject(baseTip)
	if err != nil {
		return Commit{}, fmt.Errorf("%w: tip %s not fetched yet", ErrConflict, baseTip)
	}
	hash, objects, err := r.commitOn(tip, edit)
	if err != nil || hash.IsZero() {
		return Commit{Hash: tip.Hash.String()}, err
	}
	// The remote has the base; the new commit and the objects it added are all it lacks.
	if err := ps.send(ctx, r, lease, hash, objects); err != nil {
		return Commit{}, err
	}
	_ = r.repo.Storer.SetReference(plumbing.NewHashReference(r.trackingRef(branch), hash))
	return Commit{Hash: hash.String(), Changed: true}, nil
}

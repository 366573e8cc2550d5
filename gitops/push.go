package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// pushSession is one receive-pack conversation: it learns the remote tip first, so that a batch
// built on an up-to-date cache needs no fetch, and it sends exactly the objects the commit added.
// (go-git's Push walks the whole history of the remote refs to find what to send: on a repository
// with thousands of commits that walk costs more than everything else.)
type pushSession struct {
	sess transport.ReceivePackSession
	adv  *packp.AdvRefs
	ref  plumbing.ReferenceName
}

// openPush starts a conversation that will update branch.
func (r *Repo) openPush(ctx context.Context, branch string) (*pushSession, error) {
	ep, err := transport.NewEndpoint(r.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url %s: %w", RedactURL(r.cfg.URL), err)
	}
	ep.CaBundle = r.cfg.Auth.CABundle
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", branch, classify(err))
	}
	sess, err := cl.NewReceivePackSession(ep, r.auth)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", branch, classify(err))
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("push %s: %w", branch, classify(err))
	}
	return &pushSession{sess: sess, adv: adv, ref: plumbing.NewBranchReferenceName(branch)}, nil
}

// tip returns the advertised tip of a branch, zero when it does not exist.
func (ps *pushSession) tip(branch string) plumbing.Hash {
	return ps.adv.References[plumbing.NewBranchReferenceName(branch).String()]
}

func (ps *pushSession) Close() { _ = ps.sess.Close() }

// send moves the branch from old to new, carrying objects. The server applies the update only if
// the branch is still at old: a compare-and-swap, so a concurrent writer is never overwritten.
func (ps *pushSession) send(ctx context.Context, r *Repo, old, new plumbing.Hash, objects []plumbing.Hash) error {
	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, r.repo.Storer, false).Encode(objects, 10); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ps.adv.Capabilities)
	req.Commands = []*packp.Command{{Name: ps.ref, Old: old, New: new}}
	req.Packfile = io.NopCloser(&pack)
	report, err := ps.sess.ReceivePack(ctx, req)
	if err != nil {
		return fmt.Errorf("push %s: %w", ps.ref.Short(), classify(err))
	}
	if report != nil {
		if err := report.Error(); err != nil {
			return fmt.Errorf("push %s: %w", ps.ref.Short(), classify(err))
		}
	}
	return nil
}

var errNoBranch = errors.New("branch does not exist on the remote")

package updater

import (
	"context"
	"log/slog"
	"time"

	"github.com/imagehook/imagehook/event"
)

// finisher is one queue's route to the end of the flow, for every outcome — a pushed batch, a
// verify failure, an ignored push, a batch that gave up, a merged or closed pull request: it runs
// the direct applies in order, starts the deploy follow, and hands the settled events to the
// reporter, which sends their reports beside it. A slow cluster holds up only its own queue's
// finisher; a slow robot or SMTP server holds up nothing.
type finisher struct {
	f   *flow
	key string
	log *slog.Logger
	q   *queue
}

// run finishes the queue's batches, in order. At shutdown it finishes the batch in hand; batches
// still waiting stay "running" in the journal and are resumed on restart (their commits are found
// by trailer, not pushed again).
func (fin *finisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-fin.q.finSignal:
		}
		for ctx.Err() == nil {
			batch := fin.f.q.nextFinish(fin.q)
			if batch == nil {
				break
			}
			fin.batch(context.WithoutCancel(ctx), batch)
		}
	}
}

// batch finishes each event, then follows the deploy of those whose commit is watched (beside the
// queue: it takes minutes) and hands the others to the reporter.
func (fin *finisher) batch(ctx context.Context, evs []*event.Event) {
	for _, ev := range evs {
		fin.finish(ctx, ev)
	}
	follow, rest := fin.f.toFollow(evs)
	fin.f.rep.complete(ctx, fin.log, rest)
	if len(follow) == 0 {
		return
	}
	// The events stay "running" (resumed after a restart) until the follow ends.
	for _, ev := range follow {
		ev.Resume()
		ev.SetStep(event.Step{Name: event.StepDeploy, Status: event.Running, At: time.Now(), Detail: "waiting for the GitOps tool"})
	}
	fin.f.save(ctx, fin.log, follow)
	fin.f.q.goFlow(func() {
		if fin.f.follow(fin.log, follow) {
			fin.f.rep.complete(ctx, fin.log, follow)
		}
	})
}

// finish runs the steps after git (direct apply) and settles the status. An event already settled
// as ignored or cancelled (a duplicate delivery, a replay, a pull request closed unmerged) skips
// them, as does a push its registry did not vouch for, or a change nothing of which was merged as
// proposed.
func (fin *finisher) finish(ctx context.Context, ev *event.Event) {
	if ev.Status == event.Ignored || ev.Status == event.Cancelled {
		ev.Settle()
		return
	}
	// Direct-only events are ordered here, where they are applied one after another.
	if ev.Repo() == "" {
		reason, why, err := fin.f.staleWaiting(ctx, fin.log, ev)
		if err != nil {
			ev.SetStep(event.Step{Name: event.StepApply, Status: event.Queued, Reason: event.ReasonJournalUnavailable, Error: err.Error(), At: time.Now()})
			return // still running in the journal: the next start resumes it
		}
		if why != "" {
			ev.SetStep(event.Step{Name: event.StepApply, Status: event.Ignored, Reason: reason, Detail: why, At: time.Now()})
			ev.Settle()
			return
		}
	}
	// A push its registry did not vouch for reaches no cluster either; a failed commit does not
	// stop the direct apply: the cluster path is independent.
	if st, ok := ev.Step(event.StepVerify); ok && st.Status != event.Succeeded {
		if st.Status == event.Queued { // gave up waiting for the registry
			st.Status = event.Failed
			ev.SetStep(st)
		}
		ev.Settle()
		return
	}
	// A pull request merged with another image than proposed, or one imagehook refused to use
	// (a fork's look-alike, a branch with a commit imagehook did not push), reaches no cluster
	// directly: nothing of it was merged as proposed.
	if st, ok := ev.Step(event.StepGit); ok && st.Status != event.Succeeded && noDirectApply(st.Reason) {
		for _, t := range ev.Targets {
			if t.Cluster != "" {
				ev.SetStep(event.Step{Name: event.StepApply, Cluster: t.Cluster, Status: event.Ignored, Reason: st.Reason,
					Detail: "not applied: " + st.Error, At: time.Now()})
			}
		}
		ev.Settle()
		return
	}
	fin.apply(ctx, ev)
	ev.Settle()
}

// apply patches each of the event's cluster targets directly.
func (fin *finisher) apply(ctx context.Context, ev *event.Event) {
	for _, t := range ev.Targets {
		if t.Cluster == "" {
			continue
		}
		if fin.f.applier == nil {
			ev.SetStep(event.Step{Name: event.StepApply, Cluster: t.Cluster, Status: event.Failed, Error: "direct apply is not configured", At: time.Now()})
			continue
		}
		st, err := fin.f.applier.Apply(ctx, t, ev)
		st.Name, st.Cluster, st.At = event.StepApply, t.Cluster, time.Now()
		if err != nil {
			st.Status, st.Error = event.Failed, err.Error()
		} else {
			fin.f.opts.Metrics.applyLatency.Observe(st.At.Sub(ev.ReceivedAt).Seconds())
		}
		ev.SetStep(st)
	}
	if ev.Repo() == "" {
		fin.f.recordApplied(ctx, fin.log, []*event.Event{ev}, func(t event.Target) bool { return t.Cluster != "" })
	}
}

// noDirectApply reports whether a git step's reason keeps the event off the clusters.
func noDirectApply(r event.Reason) bool {
	switch r {
	case event.ReasonMergedOtherContent, event.ReasonForeignPullRequest, event.ReasonForeignCommit:
		return true
	}
	return false
}

package updater

import (
	"log/slog"

	"github.com/imagehook/imagehook/event"
)

// toFollow splits finished events into those whose commit is followed to Ready (their repository
// has a watch, and their git step pushed a change) and the rest.
func (f *flow) toFollow(evs []*event.Event) (follow, rest []*event.Event) {
	for _, ev := range evs {
		r, ok := f.repos[ev.Repo()]
		st, has := ev.Step(event.StepGit)
		// A step that changed files, or was carried by a commit that did (superseded, pushed by
		// an earlier attempt, merged): not one that found the image already in place. Only its
		// reason says which, never its detail.
		carried := len(st.Files) > 0 || st.Reason != event.ReasonUnchanged
		if ok && r.Deploy != nil && has && st.Status == event.Succeeded && st.Commit != "" && ev.Status != event.Failed && carried {
			follow = append(follow, ev)
			continue
		}
		rest = append(rest, ev)
	}
	return follow, rest
}

// follow tracks each commit once for the events it carried, records the deploy step and settles
// them. It reports false when the updater is stopping: the events stay running in the journal.
func (f *flow) follow(log *slog.Logger, evs []*event.Event) bool {
	byCommit := map[string][]*event.Event{}
	var order []string
	for _, ev := range evs {
		st, _ := ev.Step(event.StepGit)
		if byCommit[st.Commit] == nil {
			order = append(order, st.Commit)
		}
		byCommit[st.Commit] = append(byCommit[st.Commit], ev)
	}
	ctx := f.q.runContext()
	for _, commit := range order {
		group := byCommit[commit]
		var files []string
		var changes []event.Change
		seen := map[string]bool{}
		for _, ev := range group {
			st, _ := ev.Step(event.StepGit)
			for _, f := range st.Files {
				if !seen[f] {
					seen[f] = true
					files = append(files, f)
				}
			}
			changes = append(changes, st.Changes...)
		}
		tracker := f.repos[group[0].Repo()].Deploy
		st, err := tracker.Track(ctx, commit, files, changes)
		if err != nil {
			log.Info("deploy tracking interrupted; resumed at the next start", "commit", commit)
			return false
		}
		log.Info("deploy followed", "commit", commit, "status", st.Status, "apps", st.Apps, "err", st.Error)
		for _, ev := range group {
			ev.SetStep(st)
			ev.Settle()
			if st.Status == event.Succeeded && !st.ReadyAt.IsZero() {
				if g, ok := ev.Step(event.StepGit); ok {
					f.opts.Metrics.pushToReady.WithLabelValues(ev.Hook).Observe(st.ReadyAt.Sub(g.At).Seconds())
				}
				f.opts.Metrics.acceptToReady.WithLabelValues(ev.Hook).Observe(st.ReadyAt.Sub(ev.ReceivedAt).Seconds())
			}
		}
	}
	return true
}

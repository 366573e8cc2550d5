package updater

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/manifests"
)

// gitResult is what the git step decided for a batch.
type gitResult int

const (
	// gitDone: every event's git step is recorded (succeeded, ignored, failed for good, or
	// awaiting its pull request's merge); the batch goes on to the finisher.
	gitDone gitResult = iota
	// gitRetry: the step failed in a way worth another try (a network error, a conflict).
	gitRetry
	// gitLost: this replica lost the queue during the step; the journal is left as it was for
	// the new owner.
	gitLost
)

// gitStep writes the batch to its repository: one commit pushed to the branch (plan → edit →
// record), or the pull requests that propose it (review.go).
func (w *worker) gitStep(batch []*event.Event) gitResult {
	r, ok := w.f.repos[w.key]
	var result gitResult
	switch {
	case !ok || r.Git == nil:
		for _, ev := range batch {
			ev.SetStep(gitFailed(w.key, fmt.Errorf("no repository named %q is configured", w.key), ""))
		}
	case r.Review != nil:
		if batch = w.recordLanded(r.Git, batch); len(batch) > 0 && w.f.rv.step(w.ctx, w.log, w.key, r, batch) {
			result = gitRetry
		}
	default:
		result = w.push(r, batch)
	}
	if !w.f.owns(w.key) {
		return gitLost
	}
	return result
}

// gitFailed is the git step of an event whose write failed: the one literal of it.
func gitFailed(repo string, err error, reason event.Reason) event.Step {
	return event.Step{Name: event.StepGit, Repo: repo, Status: event.Failed, Reason: reason, Error: err.Error(), At: time.Now()}
}

// push applies the whole batch in one commit on the branch.
func (w *worker) push(r Repository, batch []*event.Event) gitResult {
	g := planBatch(w.key, batch, w.f.opts, r.Template)
	g.index = r.Index
	// The events whose push already landed stay in the plan: they still win their targets over
	// the batch's older events.
	g.landed = w.f.alreadyLanded(w.ctx, w.log, r.Git, batch)
	if g.allLanded() {
		g.record(gitops.Commit{}, r.CommitURL)
		return gitDone
	}
	g.committer = r.Git.Identity()
	g.lookup = func(id string) (*event.Event, error) { return w.f.journal.Get(w.ctx, id) }
	g.log = w.log
	started := time.Now()
	commit, err := r.Git.CommitAndPush(w.ctx, w.f.owned(w.ctx, w.key, g.catchUp(g.edit)))
	w.f.observeGit(commit, err, batch, started)
	if err != nil {
		retry := !errors.Is(err, gitops.ErrRejected) && !errors.Is(err, gitops.ErrAuth)
		if errors.Is(err, errNotOwner) {
			// Left to the queue's owner, whoever that is now: the proof gave the queue up, so the
			// batch leaves the journal as it was (and were the queue this replica's again by
			// then, the batch would be retried, never recorded unpushed).
			w.log.Warn("git step fenced: this replica could not prove it still works the queue", "events", eventIDs(batch), "err", err)
		} else {
			w.log.Error("git step failed", "events", eventIDs(batch), "err", err, "retry", retry)
		}
		for _, ev := range batch {
			ev.SetStep(gitFailed(w.key, err, ""))
		}
		if retry {
			return gitRetry
		}
		return gitDone
	}
	g.record(commit, r.CommitURL)
	if r.Index != nil {
		if err := r.Index.Save(false); err != nil {
			w.log.Warn("saving the manifests index", "err", err)
		}
	}
	w.log.Info("git step done", "events", eventIDs(batch), "commit", commit.Hash, "changed", commit.Changed, "attempts", commit.Attempts)
	return gitDone
}

// recordLanded records the retried events whose push landed before a crash (their commit's
// trailers name them) instead of applying them again, and returns the others.
func (w *worker) recordLanded(repo GitRepo, batch []*event.Event) []*event.Event {
	landed := w.f.alreadyLanded(w.ctx, w.log, repo, batch)
	if len(landed) == 0 {
		return batch
	}
	var rest []*event.Event
	for _, ev := range batch {
		if c, ok := landed[ev.ID]; ok {
			ev.SetStep(landedStep(w.key, c, time.Now()))
			continue
		}
		rest = append(rest, ev)
	}
	return rest
}

// gitBatch is one git step over a batch of events for one repository, in three parts: the plan
// (which event wins each target: the one journaled last), the edit (the rewrite over the branch
// tip, which repo.Apply may run again on a newer tip after a conflict), and the record (the
// commit or the error onto each event).
type gitBatch struct {
	key      string
	events   []*event.Event
	opts     Options
	template *template.Template
	index    *manifests.Index
	// latest maps a target key to the event that wins it; the others are superseded and share
	// its commit.
	latest map[string]*event.Event
	// results is what the last run of edit found, by event id.
	results map[string]*outcome
	// landed maps the events whose push already landed (an earlier attempt's, or another
	// replica's that was in flight when this one took the queue over) to the commit that carries
	// them: they are not carried again, and still win their targets over older events.
	landed map[string]string
	// foreign are events outside the batch, journaled later than its winner of a target, whose
	// push landed since the batch's base: they win that target.
	foreign map[string]*event.Event
	// base is the tip the last attempt was built on ("" before the first).
	base string
	// committer is imagehook's identity: only its commits' trailers are read.
	committer gitops.Signature
	// lookup reads an event from the journal (for events that landed outside the batch).
	lookup func(id string) (*event.Event, error)
	log    *slog.Logger
}

// outcome is what the edit found for one event of a batch.
type outcome struct {
	changes []event.Change
	ignored []string
	// skipped names the files not read, and why.
	skipped []string
	err     error
}

func planBatch(key string, batch []*event.Event, opts Options, tmpl *template.Template) *gitBatch {
	g := &gitBatch{key: key, events: batch, opts: opts, template: tmpl, latest: map[string]*event.Event{}, foreign: map[string]*event.Event{}}
	// The batch is in journal order: the last event for a target wins.
	for _, ev := range batch {
		for _, t := range ev.Targets {
			if t.Repo != "" {
				g.latest[t.Key()] = ev
			}
		}
	}
	return g
}

// edit rewrites every winning target over base and returns the changed files and the message.
func (g *gitBatch) edit(base fs.FS) (map[string][]byte, string, error) {
	g.results = map[string]*outcome{}
	over := manifests.NewOverlay(base)
	for _, ev := range g.events {
		if _, ok := g.landed[ev.ID]; ok {
			g.results[ev.ID] = &outcome{}
			continue
		}
		g.results[ev.ID] = g.apply(over, ev)
	}
	msg, err := commitMessage(g.template, g.carried(), func(id string) []event.Change { return g.results[id].changes })
	return over.Files(), msg, err
}

// apply rewrites the targets an event wins, with one read budget for the whole event.
func (g *gitBatch) apply(over *manifests.Overlay, ev *event.Event) *outcome {
	out := &outcome{}
	pushed, err := imageref.Parse(ev.Push.Ref())
	if err != nil {
		out.err = err
		return out
	}
	budget := g.opts.Budget
	opts := manifests.Options{Pin: manifests.Pin(ev.Pin), WriteHost: ev.Push.ExplicitHost, NoDowngrade: ev.NoDowngrade,
		RegistryAliases: g.opts.RegistryAliases, Budget: &budget, Index: g.index}
	for _, t := range ev.Targets {
		if t.Repo == "" || g.latest[t.Key()] != ev {
			continue
		}
		changes, skipped, err := rewriteTarget(over, t, pushed, opts)
		out.skipped = append(out.skipped, skipped...)
		if manifests.Skipped(err) {
			out.ignored = append(out.ignored, err.Error())
			continue
		}
		if err != nil {
			out.err = err
			break
		}
		out.changes = append(out.changes, changes...)
	}
	return out
}

// carried returns the events the commit carries out, for its trailers: those that change a value,
// and the ones they superseded. An event that changes nothing (its push already landed, perhaps
// from a process that died before recording it) is left out, so no event is ever in two commits'
// trailers.
func (g *gitBatch) carried() []*event.Event {
	changed := map[string]bool{}
	for _, ev := range g.events {
		changed[ev.ID] = anyChange(g.results[ev.ID].changes)
	}
	var out []*event.Event
	for _, ev := range g.events {
		if _, ok := g.landed[ev.ID]; ok || g.results[ev.ID].err != nil {
			continue
		}
		carried := changed[ev.ID]
		for _, t := range ev.Targets {
			if w := g.latest[t.Key()]; t.Repo != "" && w != ev && changed[w.ID] {
				carried = true
			}
		}
		if carried {
			out = append(out, ev)
		}
	}
	return out
}

// record writes each event's git step from the commit.
func (g *gitBatch) record(commit gitops.Commit, commitURL string) {
	now := time.Now()
	for _, ev := range g.events {
		if c, ok := g.landed[ev.ID]; ok {
			ev.SetStep(landedStep(g.key, c, now))
			continue
		}
		out := g.results[ev.ID]
		st := event.Step{Name: event.StepGit, Repo: g.key, At: now, Commit: commit.Hash, Skipped: out.skipped}
		if commitURL != "" && commit.Changed {
			st.URL = strings.ReplaceAll(commitURL, "{sha}", commit.Hash)
		}
		switch {
		case out.err != nil:
			st.Status, st.Error, st.Commit = event.Failed, out.err.Error(), ""
			st.Reason = event.ReasonOf(out.err)
		case g.superseded(ev):
			st.Status, st.Reason = event.Succeeded, event.ReasonSuperseded
			st.Detail = "superseded by a later push in the same batch"
			if w, c := g.landedWinner(ev); w != "" {
				st.Commit, st.URL = c, ""
				st.Detail = "superseded by event " + w + ", journaled later, whose push landed in commit " + c
			}
		case len(out.changes) == 0 && len(out.ignored) > 0:
			st.Status, st.Commit = event.Ignored, ""
			st.Detail = strings.Join(out.ignored, "; ")
		default:
			st.Status = event.Succeeded
			st.Changes = out.changes
			st.Files = changedFiles(out.changes)
			if len(st.Files) == 0 {
				st.Reason = event.ReasonUnchanged
				st.Detail = "unchanged: the image is already at the wanted value"
			}
		}
		ev.SetStep(st)
	}
}

func (g *gitBatch) superseded(ev *event.Event) bool {
	for _, t := range ev.Targets {
		if t.Repo != "" && g.latest[t.Key()] != ev {
			return true
		}
	}
	return false
}

// landedWinner returns the landed event that supersedes ev on one of its targets, and its commit
// ("" when only events of this commit supersede it).
func (g *gitBatch) landedWinner(ev *event.Event) (string, string) {
	for _, t := range ev.Targets {
		if w := g.latest[t.Key()]; t.Repo != "" && w != ev {
			if c, ok := g.landed[w.ID]; ok {
				return w.ID, c
			}
		}
	}
	return "", ""
}

// allLanded reports whether every event of the batch already landed.
func (g *gitBatch) allLanded() bool {
	for _, ev := range g.events {
		if _, ok := g.landed[ev.ID]; !ok {
			return false
		}
	}
	return true
}

// catchUpLimit bounds the commits an attempt reads back for pushes that landed meanwhile.
const catchUpLimit = 500

// clockSkew is the allowance between replicas' clocks when the first attempt reads back the
// commits made since the batch's oldest event was received.
const clockSkew = time.Minute

// catchUp wraps edit so that every attempt first reads the trailers of the commits that landed
// since the previous attempt's tip (on the first attempt of a batch tried before: since its oldest
// event was received), so that no event is carried by two commits and no event journaled later is
// overwritten. Such commits are another replica's: a previous owner's push that was in flight when
// this replica took the queue over, landing before this one's.
func (g *gitBatch) catchUp(edit gitops.EditFunc) gitops.EditFunc {
	return func(fsys fs.FS) (map[string][]byte, string, error) {
		tip, ok := fsys.(gitops.Tip)
		if !ok {
			// gitops's views are tips; a Repo of another kind (a test's) has no history to read.
			if g.tried() {
				g.log.Warn("the repository's view has no history: pushes that landed since the batch's base are not read back")
			}
			return edit(fsys)
		}
		base := g.base
		g.base = tip.Hash()
		if base == tip.Hash() || (base == "" && !g.tried()) {
			return edit(fsys)
		}
		since := g.oldest().Add(-clockSkew)
		entries, err := audit.Reader{Committer: g.committer}.History(func(fn gitops.LogFunc) error {
			return tip.Log(catchUpLimit, func(c gitops.LogCommit) bool {
				if c.Hash == base || (base == "" && c.When.Before(since)) {
					return false
				}
				return fn(c)
			})
		}, 0, "")
		if err != nil {
			return nil, "", fmt.Errorf("read back the commits since %s: %w", shortHash(base), err)
		}
		if err := g.landedSince(entries); err != nil {
			return nil, "", err
		}
		return edit(fsys)
	}
}

// landedSince records the events the entries carry: the batch's own are landed, and an event
// outside the batch, journaled later than the batch's winner of a target, wins that target.
func (g *gitBatch) landedSince(entries []audit.Entry) error {
	inBatch := map[string]*event.Event{}
	for _, ev := range g.events {
		inBatch[ev.ID] = ev
	}
	for _, e := range entries {
		if _, ok := g.landed[e.Event]; ok {
			continue
		}
		if g.landed == nil {
			g.landed = map[string]string{}
		}
		if _, ok := inBatch[e.Event]; ok {
			g.landed[e.Event] = e.Commit
			g.log.Info("event already carried by a commit since the batch's base; left out of this one", "event", e.Event, "commit", e.Commit)
			continue
		}
		if g.foreign[e.Event] != nil || g.lookup == nil {
			continue
		}
		f, err := g.lookup(e.Event)
		if errors.Is(err, event.ErrNotFound) {
			continue // pruned from the journal: older than anything the batch holds
		}
		if err != nil {
			return fmt.Errorf("read event %s, carried by commit %s: %w", e.Event, e.Commit, err)
		}
		for _, t := range f.Targets {
			if w := g.latest[t.Key()]; t.Repo != "" && w != nil && w.Seq < f.Seq {
				g.latest[t.Key()] = f
				g.foreign[f.ID] = f
				g.landed[f.ID] = e.Commit
				g.log.Info("an event journaled later landed since the batch's base; it wins its target", "event", f.ID, "commit", e.Commit, "superseding", w.ID)
			}
		}
	}
	return nil
}

// tried reports whether an event of the batch was tried before (by this replica or another).
func (g *gitBatch) tried() bool {
	for _, ev := range g.events {
		if ev.Attempts > 1 {
			return true
		}
	}
	return false
}

// oldest returns when the batch's oldest event was received.
func (g *gitBatch) oldest() time.Time {
	var t time.Time
	for _, ev := range g.events {
		if t.IsZero() || ev.ReceivedAt.Before(t) {
			t = ev.ReceivedAt
		}
	}
	return t
}

func shortHash(h string) string {
	if h == "" {
		return "the batch's first events"
	}
	return h[:min(len(h), 12)]
}

// landedStep is the git step of an event whose push already landed in commit c, pushed by an
// earlier attempt or by the queue's previous owner: the one wording for the push and review paths.
func landedStep(repo, c string, at time.Time) event.Step {
	return event.Step{Name: event.StepGit, Repo: repo, Status: event.Succeeded, Commit: c, At: at,
		Reason: event.ReasonLanded, Detail: "pushed by an earlier attempt, or by the queue's previous owner, in commit " + c}
}

func changedFiles(cs []event.Change) []string {
	files := map[string]bool{}
	for _, c := range cs {
		if c.Changed() {
			files[c.File] = true
		}
	}
	out := make([]string, 0, len(files))
	for f := range files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func anyChange(cs []event.Change) bool {
	for _, c := range cs {
		if c.Changed() {
			return true
		}
	}
	return false
}

// rewriteTarget applies one target's rewrite to the overlay. It returns the changes, with every value
// made one line (they come from the manifests, which many people commit to, and reach commit
// messages and mail), and the files the budget skipped.
func rewriteTarget(fsys *manifests.Overlay, t event.Target, pushed imageref.Ref, opts manifests.Options) ([]event.Change, []string, error) {
	place := manifests.Place{Path: t.Path, Marker: t.Marker}
	if v := t.Values; v != nil {
		values := *v // one type (manifests.Values is event.Values); a copy, as the event's stays frozen
		place.Values = &values
	} else if t.Workload != "" {
		var err error
		if place.Workload, err = manifests.WorkloadTarget(t.Workload, t.Namespace, t.Container); err != nil {
			return nil, nil, err
		}
	}
	res, err := manifests.Rewrite(fsys, place, pushed, opts)
	if err != nil {
		return nil, res.Warnings, err
	}
	fsys.Store(res)
	changes := make([]event.Change, 0, len(res.Changes))
	for _, c := range res.Changes {
		workload := strings.ToLower(c.Kind) + "/" + c.Name
		if t.Workload != "" && c.Place != manifests.PlaceWorkload {
			workload = t.Workload
		}
		changes = append(changes, event.Change{File: event.OneLine(c.File), Workload: event.OneLine(workload),
			Namespace: event.OneLine(c.Namespace), Container: event.OneLine(c.Container), Old: event.OneLine(c.Old), New: event.OneLine(c.New)})
	}
	return changes, res.Warnings, nil
}

// commitMessage writes the subject and the list of changes (or the repository's template), then
// one trailer block per event (package audit), which `imagehook history` and crash recovery read
// back. The template sees the events with every payload value made one line, and its output is
// never the final paragraph: only that paragraph is read as trailers.
func commitMessage(tmpl *template.Template, evs []*event.Event, changes func(id string) []event.Change) (string, error) {
	var all []event.Change
	for _, ev := range evs {
		for _, c := range changes(ev.ID) {
			if c.Changed() {
				all = append(all, c)
			}
		}
	}
	var b strings.Builder
	if tmpl != nil {
		clean := make([]*event.Event, len(evs))
		for i, ev := range evs {
			clean[i] = ev.Printable()
		}
		if err := tmpl.Execute(&b, CommitData{Events: clean, Changes: all}); err != nil {
			return "", fmt.Errorf("commit template: %w", err)
		}
		b.WriteString("\n\n")
	} else {
		if len(all) == 1 {
			fmt.Fprintf(&b, "imagehook: %s %s to %s\n\n", all[0].Workload, all[0].Container, all[0].New)
		} else {
			fmt.Fprintf(&b, "imagehook: update %d images\n\n", len(all))
		}
		for _, c := range all {
			fmt.Fprintf(&b, "- %s: %s container %s: %s -> %s\n", c.File, c.Workload, c.Container, c.Old, c.New)
		}
		b.WriteString("\n")
	}
	for _, ev := range evs {
		audit.WriteBlock(&b, ev, changes(ev.ID))
	}
	return b.String(), nil
}

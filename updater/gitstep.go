package updater

import (
	"context"
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

// gitStep applies the whole batch in one commit. It reports whether the batch should be retried.
func (u *Updater) gitStep(ctx context.Context, log *slog.Logger, key string, batch []*event.Event) bool {
	r, ok := u.repos[key]
	repo := r.Git
	if !ok || repo == nil {
		for _, ev := range batch {
			ev.SetStep(event.Step{Name: event.StepGit, Repo: key, Status: event.Failed, Error: fmt.Sprintf("no repository named %q is configured", key), At: time.Now()})
		}
		return false
	}
	if batch = u.recordLanded(ctx, log, repo, key, batch); len(batch) == 0 {
		return false
	}
	if r.Review != nil {
		return u.reviewStep(ctx, log, key, r, batch)
	}
	g := planBatch(key, batch, u.opts, r.Template)
	g.index = r.Index
	started := time.Now()
	commit, err := repo.Apply(ctx, u.owned(key, g.edit))
	u.observeGit(commit, err, batch, started)
	if err != nil {
		retry := !errors.Is(err, gitops.ErrRejected) && !errors.Is(err, gitops.ErrAuth)
		log.Error("git step failed", "events", eventIDs(batch), "err", err, "retry", retry)
		for _, ev := range batch {
			ev.SetStep(event.Step{Name: event.StepGit, Repo: key, Status: event.Failed, Error: err.Error(), At: time.Now()})
		}
		return retry
	}
	g.record(commit, r.CommitURL)
	if r.Index != nil {
		if err := r.Index.Save(false); err != nil {
			log.Warn("saving the manifests index", "err", err)
		}
	}
	log.Info("git step done", "events", eventIDs(batch), "commit", commit.Hash, "changed", commit.Changed, "attempts", commit.Attempts)
	return false
}

// recordLanded records the retried events whose push landed before a crash (their commit's
// trailers name them) instead of applying them again, and returns the others.
func (u *Updater) recordLanded(ctx context.Context, log *slog.Logger, repo Repo, key string, batch []*event.Event) []*event.Event {
	landed := u.alreadyLanded(ctx, log, repo, batch)
	if len(landed) == 0 {
		return batch
	}
	var rest []*event.Event
	for _, ev := range batch {
		if c, ok := landed[ev.ID]; ok {
			ev.SetStep(event.Step{Name: event.StepGit, Repo: key, Status: event.Succeeded, Commit: c, At: time.Now(),
				Detail: "pushed by an earlier attempt"})
			continue
		}
		rest = append(rest, ev)
	}
	return rest
}

// observeGit records a git step's measurements.
func (u *Updater) observeGit(commit gitops.Commit, err error, batch []*event.Event, started time.Time) {
	m, now := u.opts.Metrics, time.Now()
	if commit.Attempts > 1 {
		m.gitRetries.Add(float64(commit.Attempts - 1))
	}
	if err != nil {
		m.gitDuration.WithLabelValues("error").Observe(now.Sub(started).Seconds())
		return
	}
	m.gitDuration.WithLabelValues("ok").Observe(now.Sub(started).Seconds())
	if commit.Changed {
		m.gitCommits.Inc()
		for _, ev := range batch {
			m.pushLatency.Observe(now.Sub(ev.ReceivedAt).Seconds())
		}
	}
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
	g := &gitBatch{key: key, events: batch, opts: opts, template: tmpl, latest: map[string]*event.Event{}}
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
	over := &overlay{base: base, files: map[string][]byte{}}
	for _, ev := range g.events {
		g.results[ev.ID] = g.apply(over, ev)
	}
	msg, err := commitMessage(g.template, g.carried(), func(id string) []event.Change { return g.results[id].changes })
	return over.files, msg, err
}

// apply rewrites the targets an event wins, with one read budget for the whole event.
func (g *gitBatch) apply(over *overlay, ev *event.Event) *outcome {
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
		changes, skipped, err := setImage(over, t, pushed, opts)
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
		if g.results[ev.ID].err != nil {
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
		out := g.results[ev.ID]
		st := event.Step{Name: event.StepGit, Repo: g.key, At: now, Commit: commit.Hash, Skipped: out.skipped}
		if commitURL != "" && commit.Changed {
			st.URL = strings.ReplaceAll(commitURL, "{sha}", commit.Hash)
		}
		switch {
		case out.err != nil:
			st.Status, st.Error, st.Commit = event.Failed, out.err.Error(), ""
		case g.superseded(ev):
			st.Status = event.Succeeded
			st.Detail = "superseded by a later push in the same batch"
		case len(out.changes) == 0 && len(out.ignored) > 0:
			st.Status, st.Commit = event.Ignored, ""
			st.Detail = strings.Join(out.ignored, "; ")
		default:
			st.Status = event.Succeeded
			st.Changes = out.changes
			st.Files = changedFiles(out.changes)
			if len(st.Files) == 0 {
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

func changedFiles(cs []event.Change) []string {
	files := map[string]bool{}
	for _, c := range cs {
		if c.Old != c.New {
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
		if c.Old != c.New {
			return true
		}
	}
	return false
}

// setImage applies one target's rewrite to the overlay. It returns the changes, with every value
// made one line (they come from the manifests, which many people commit to, and reach commit
// messages and mail), and the files the budget skipped.
func setImage(fsys *overlay, t event.Target, pushed imageref.Ref, opts manifests.Options) ([]event.Change, []string, error) {
	place := manifests.Place{Path: t.Path, Marker: t.Marker}
	if v := t.Values; v != nil {
		place.Values = &manifests.Values{File: v.File, Image: v.Image, Registry: v.Registry, Repository: v.Repository, Tag: v.Tag, Digest: v.Digest}
	} else if t.Workload != "" {
		var err error
		if place.Workload, err = manifests.WorkloadTarget(t.Workload, t.Namespace, t.Container); err != nil {
			return nil, nil, err
		}
	}
	res, err := manifests.Apply(fsys, place, pushed, opts)
	if err != nil {
		return nil, res.Warnings, err
	}
	for name, data := range res.Files {
		fsys.files[name] = data
	}
	changes := make([]event.Change, 0, len(res.Changes))
	for _, c := range res.Changes {
		workload := strings.ToLower(c.Kind) + "/" + c.Name
		if t.Workload != "" && (t.Marker != "" || t.Values != nil || c.Kind == "Kustomization") {
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
			if c.Old != c.New {
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

// errNotOwner stops a git step whose queue another replica took over.
var errNotOwner = errors.New("this replica no longer works the queue")

// owned guards an edit with the queue's ownership: it is checked on every attempt, right before
// a commit is built, so a replica that lost the queue (say, its database session broke) never
// pushes on top of the new owner's work.
func (u *Updater) owned(key string, edit gitops.EditFunc) gitops.EditFunc {
	if u.opts.Peers == nil {
		return edit
	}
	return func(fsys fs.FS) (map[string][]byte, string, error) {
		if !u.opts.Peers.Owns(key) {
			return nil, "", errNotOwner
		}
		return edit(fsys)
	}
}

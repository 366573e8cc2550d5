// Package updater is imagehook's flow: it journals each accepted event, runs one worker per
// manifests repository (events for a repository are applied in order, a burst coalesced into one
// commit), applies directly to clusters, notifies, and records every step on the event.
package updater

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/redact"
)

// Repo is what the updater needs of a manifests repository.
type Repo interface {
	Apply(ctx context.Context, edit gitops.EditFunc) (gitops.Commit, error)
	// Log walks the branch's last limit commits, newest first, after a fetch.
	Log(ctx context.Context, limit int, fn gitops.LogFunc) error
	// Identity is the committer of imagehook's commits: only their trailers are read back.
	Identity() gitops.Signature
}

// Applier patches a workload directly on a cluster.
type Applier interface {
	Apply(ctx context.Context, t event.Target, ev *event.Event) (event.Step, error)
}

// Options tunes retries.
type Options struct {
	// RetryBase is the first delay after a failed git batch; it doubles up to RetryMax.
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxAttempts bounds the git batches tried for one event before it fails.
	MaxAttempts int
	// CommitURLs maps a repository name to its commit link template, with {sha} for the commit.
	CommitURLs map[string]string
	// RegistryAliases groups registry hosts that serve the same repositories (see manifests).
	RegistryAliases [][]string
	// Metrics receives the flow's measurements (nil: not exported).
	Metrics *Metrics
	// Retention is how long finished events stay in the journal (0: 30 days).
	Retention time.Duration
	// CommitTemplates maps a repository name to a template for the commit message's subject and
	// body (data: CommitData); imagehook's trailers always follow it.
	CommitTemplates map[string]*template.Template
	// Redactor masks the configuration's secrets in what events record (errors from git, SMTP,
	// the cluster), before they are stored, served or mailed.
	Redactor *redact.Redactor
	// Budget bounds what one event reads of the manifests (per-file size, parsed bytes and nodes).
	Budget manifests.Budget
}

// CommitData is what a commit message template sees.
type CommitData struct {
	Events  []*event.Event
	Changes []event.Change
}

// Updater runs the flow. Create it with New, then call Run.
type Updater struct {
	journal  *Journal
	repos    map[string]Repo
	applier  Applier
	notifier notify.Notifier
	log      *slog.Logger
	opts     Options

	mu      sync.Mutex
	queues  map[string]*queue
	waiters map[string][]chan struct{}
	// tracked holds the events queued or in flight, so that an event found both by a submission
	// and by the start-up scan of the journal is run once.
	tracked map[string]bool
	wg      sync.WaitGroup
	ctx     context.Context
}

type queue struct {
	ids    []string
	signal chan struct{}
	// finishing feeds the queue's finisher: direct apply (which may wait minutes for a rollout) and
	// mail run there, in order, while the worker goes on with the next git batch. It is a list, not
	// a bounded channel, so that a slow SMTP server or cluster never makes the git worker wait (the
	// events are in the journal either way).
	finishing [][]*event.Event
	finSignal chan struct{}
}

// queueKey names the queue of an event: its repository, or for direct-only events their cluster,
// so that one slow cluster does not hold back another.
func queueKey(ev *event.Event) string {
	if r := ev.Repo(); r != "" {
		return r
	}
	if len(ev.Targets) > 0 {
		return clusterQueue + ev.Targets[0].Cluster
	}
	return clusterQueue
}

// clusterQueue prefixes the keys of direct-only queues; repository names cannot contain it.
const clusterQueue = "\x00cluster:"

// New returns an updater; applier and notifier may be nil.
func New(j *Journal, repos map[string]Repo, applier Applier, notifier notify.Notifier, log *slog.Logger, opts Options) *Updater {
	if opts.RetryBase == 0 {
		opts.RetryBase = 2 * time.Second
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 10
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Retention == 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	return &Updater{journal: j, repos: repos, applier: applier, notifier: notifier, log: log, opts: opts,
		queues: map[string]*queue{}, waiters: map[string][]chan struct{}{}, tracked: map[string]bool{}}
}

// Journal returns the journal, for readiness checks.
func (u *Updater) Journal() *Journal { return u.journal }

// Run resumes the events a previous process left unfinished, then serves submissions until ctx
// ends, and waits for the batches in flight.
func (u *Updater) Run(ctx context.Context) error {
	u.mu.Lock()
	u.ctx = ctx
	for key, q := range u.queues {
		u.startWorker(key, q)
	}
	u.mu.Unlock()
	pending, err := u.journal.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		u.log.Info("resuming unfinished events", "count", len(pending))
	}
	for _, ev := range pending {
		u.enqueue(ev)
	}
	u.prune(ctx)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.wg.Wait()
			return nil
		case <-t.C:
			u.prune(ctx)
		}
	}
}

// prune drops finished events older than the retention.
func (u *Updater) prune(ctx context.Context) {
	n, err := u.journal.Prune(ctx, time.Now().Add(-u.opts.Retention))
	if err != nil {
		u.log.Warn("journal prune", "err", err)
	} else if n > 0 {
		u.log.Info("pruned old events", "count", n)
	}
}

// Submit journals ev (the durable promise behind a 2xx) and queues it.
func (u *Updater) Submit(ctx context.Context, ev *event.Event) error {
	ev.Status = event.Queued
	if err := u.journal.Insert(ctx, ev); err != nil {
		return err
	}
	u.enqueue(ev)
	return nil
}

// Get returns the event with that id.
func (u *Updater) Get(ctx context.Context, id string) (*event.Event, error) {
	return u.journal.Get(ctx, id)
}

// Recent returns the newest n events.
func (u *Updater) Recent(ctx context.Context, n int) ([]*event.Event, error) {
	return u.journal.Recent(ctx, n)
}

// Wait blocks until the event is done or ctx ends, and returns its latest state.
func (u *Updater) Wait(ctx context.Context, id string) (*event.Event, error) {
	ch := make(chan struct{})
	u.mu.Lock()
	u.waiters[id] = append(u.waiters[id], ch)
	u.mu.Unlock()
	defer u.unwait(id, ch)
	ev, err := u.journal.Get(ctx, id)
	if err != nil || ev.Status.Done() {
		return ev, err
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return u.journal.Get(context.WithoutCancel(ctx), id)
}

func (u *Updater) unwait(id string, ch chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(u.waiters, id)
	} else {
		u.waiters[id] = list
	}
}

func (u *Updater) untrack(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.tracked, id)
}

func (u *Updater) wake(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, ch := range u.waiters[id] {
		close(ch)
	}
	delete(u.waiters, id)
}

// enqueue adds the event to its repository's queue, starting that queue's worker on first use.
func (u *Updater) enqueue(ev *event.Event) {
	key := queueKey(ev)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tracked[ev.ID] {
		return
	}
	u.tracked[ev.ID] = true
	q, ok := u.queues[key]
	if !ok {
		q = &queue{signal: make(chan struct{}, 1), finSignal: make(chan struct{}, 1)}
		u.queues[key] = q
		if u.ctx != nil {
			u.startWorker(key, q)
		}
	}
	q.ids = append(q.ids, ev.ID)
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// startWorker must be called with u.mu held.
func (u *Updater) startWorker(key string, q *queue) {
	u.wg.Add(2)
	go func() {
		defer u.wg.Done()
		u.work(u.ctx, key, q)
	}()
	go func() {
		defer u.wg.Done()
		u.finisher(u.ctx, key, q)
	}()
}

// finisher runs the steps after git for the queue's batches, in order. At shutdown it finishes the
// batch in hand; batches still waiting stay "running" in the journal and are resumed on restart
// (their commits are found by trailer, not pushed again).
func (u *Updater) finisher(ctx context.Context, key string, q *queue) {
	log := u.log.With("repo", logKey(key))
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.finSignal:
		}
		for ctx.Err() == nil {
			u.mu.Lock()
			if len(q.finishing) == 0 {
				u.mu.Unlock()
				break
			}
			batch := q.finishing[0]
			q.finishing = q.finishing[1:]
			u.mu.Unlock()
			u.finishMany(context.WithoutCancel(ctx), log, batch)
		}
	}
}

// handOver queues a batch for the finisher; it never blocks.
func (u *Updater) handOver(q *queue, batch []*event.Event) {
	u.mu.Lock()
	q.finishing = append(q.finishing, batch)
	u.mu.Unlock()
	select {
	case q.finSignal <- struct{}{}:
	default:
	}
}

func logKey(key string) string { return strings.TrimPrefix(key, clusterQueue) }

// QueueDepth returns the number of events waiting in all queues.
func (u *Updater) QueueDepth() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, q := range u.queues {
		n += len(q.ids)
	}
	return n
}

func (u *Updater) work(ctx context.Context, key string, q *queue) {
	log := u.log.With("repo", logKey(key))
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.signal:
		}
		for {
			u.mu.Lock()
			ids := q.ids
			q.ids = nil
			u.mu.Unlock()
			if len(ids) == 0 {
				break
			}
			// Workers never use a request's context: the flow outlives the webhook call, and a
			// shutdown lets the batch in flight finish its step.
			u.runBatch(context.WithoutCancel(ctx), ctx, log, key, q, ids)
		}
	}
}

func (u *Updater) runBatch(ctx, stop context.Context, log *slog.Logger, key string, q *queue, ids []string) {
	var batch []*event.Event
	var loaded []*event.Event
	for _, id := range ids {
		ev, err := u.journal.Get(ctx, id)
		if err != nil {
			log.Error("load event", "event", id, "err", err)
			u.untrack(id)
			continue
		}
		loaded = append(loaded, ev)
	}
	// Journal order, not arrival at the queue, decides which event for a target wins.
	sort.SliceStable(loaded, func(i, j int) bool { return loaded[i].Seq < loaded[j].Seq })
	for _, ev := range loaded {
		id := ev.ID
		if ev.Status.Done() {
			u.untrack(id)
			continue
		}
		if dup, err := u.journal.Duplicate(ctx, ev); err == nil && dup != "" {
			// A registry re-delivering the same push: applying it again could only undo a later change.
			u.ignore(ctx, log, ev, "duplicate delivery of event "+dup)
			continue
		}
		if ev.Repo() != "" {
			if why := u.stale(ctx, ev); why != "" {
				u.ignore(ctx, log, ev, why)
				continue
			}
		}
		ev.Status = event.Running
		ev.Attempts++
		ev.UpdatedAt = time.Now()
		batch = append(batch, ev)
	}
	if len(batch) == 0 {
		return
	}
	u.saveMany(ctx, log, batch)
	if repo := batch[0].Repo(); repo != "" {
		if retry := u.gitStep(ctx, log, repo, batch); retry {
			u.requeue(stop, log, key, batch)
			return
		}
		u.recordApplied(ctx, log, batch, func(t event.Target) bool { return t.Repo != "" })
		// The git outcome is visible at once (GET /events), whatever apply and mail take.
		u.saveMany(ctx, log, batch)
	}
	// Still "running" in the journal until the finisher is done: resumed on restart.
	u.handOver(q, batch)
}

// ignore settles an event that must not be applied (a duplicate, a replay, a push overtaken by a
// later one) with the reason.
func (u *Updater) ignore(ctx context.Context, log *slog.Logger, ev *event.Event, why string) {
	ev.SetStep(event.Step{Name: "git", Repo: ev.Repo(), Status: event.Ignored, Detail: why, At: time.Now()})
	ev.Status = event.Ignored
	log.Info("event ignored", "event", ev.ID, "hook", ev.Hook, "reason", why)
	u.finishMany(ctx, log, []*event.Event{ev})
}

// stale says why an event must not be applied to its targets, or "": an event journaled later was
// already applied to one of them (journal order wins, whatever order the queue saw), or the push is
// older, by the registry's own clock, than the push the target runs — a replayed delivery — unless
// its hook allows older pushes (a deliberate rollback).
func (u *Updater) stale(ctx context.Context, ev *event.Event) string {
	for _, t := range ev.Targets {
		a, err := u.journal.LastApplied(ctx, t.Key())
		if err != nil || a.Event == "" || a.Event == ev.ID {
			continue
		}
		if a.Seq > ev.Seq {
			return "superseded: event " + a.Event + ", journaled later, was already applied"
		}
		if !ev.AllowOlder && !ev.Push.PushedAt.IsZero() && ev.Push.PushedAt.Before(a.PushedAt) {
			return fmt.Sprintf("older push: pushed at %s, but the target already runs a push from %s (event %s); set the hook's allowOlder to roll back on purpose",
				ev.Push.PushedAt.UTC().Format(time.RFC3339), a.PushedAt.UTC().Format(time.RFC3339), a.Event)
		}
	}
	return ""
}

// recordApplied remembers, per target, the latest event whose step for it succeeded: the base of
// stale's rules. which selects the targets the step covered.
func (u *Updater) recordApplied(ctx context.Context, log *slog.Logger, batch []*event.Event, which func(event.Target) bool) {
	for _, ev := range batch {
		name := "git"
		if ev.Repo() == "" {
			name = "apply"
		}
		st, ok := ev.Step(name)
		if !ok || st.Status != event.Succeeded {
			continue
		}
		for _, t := range ev.Targets {
			if !which(t) {
				continue
			}
			if err := u.journal.SetApplied(ctx, t.Key(), Applied{Seq: ev.Seq, PushedAt: ev.Push.PushedAt, Event: ev.ID}); err != nil {
				log.Warn("recording the applied push", "event", ev.ID, "err", err)
			}
		}
	}
}

// requeue puts a batch back after a transient git failure, after a backoff; events over their
// attempt budget fail instead.
func (u *Updater) requeue(stop context.Context, log *slog.Logger, key string, batch []*event.Event) {
	var again, gaveUp []*event.Event
	for _, ev := range batch {
		if ev.Attempts >= u.opts.MaxAttempts {
			ev.Error = fmt.Sprintf("gave up after %d attempts", ev.Attempts)
			gaveUp = append(gaveUp, ev)
			continue
		}
		ev.Status = event.Queued
		again = append(again, ev)
	}
	u.finishMany(context.WithoutCancel(stop), log, gaveUp)
	u.saveMany(context.WithoutCancel(stop), log, again)
	if len(again) == 0 {
		return
	}
	delay := u.opts.RetryBase << (again[0].Attempts - 1)
	if delay > u.opts.RetryMax || delay <= 0 {
		delay = u.opts.RetryMax
	}
	log.Warn("git step failed, will retry", "events", eventIDs(again), "in", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-stop.Done():
		return // still queued in the journal: the next start resumes them
	case <-t.C:
	}
	u.mu.Lock()
	q := u.queues[key]
	ids := make([]string, 0, len(again)+len(q.ids))
	for _, ev := range again {
		ids = append(ids, ev.ID)
	}
	q.ids = append(ids, q.ids...)
	u.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// eventIDs lists a batch's event ids for its log lines (up to 20, then a count).
func eventIDs(evs []*event.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i == 20 {
			fmt.Fprintf(&b, " +%d more", len(evs)-20)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ev.ID)
	}
	return b.String()
}

// outcome is what the edit found for one event of a batch.
type outcome struct {
	changes []event.Change
	ignored []string
	// skipped names the files not read, and why.
	skipped []string
	err     error
}

// gitStep applies the whole batch in one commit. It reports whether the batch should be retried.
func (u *Updater) gitStep(ctx context.Context, log *slog.Logger, key string, batch []*event.Event) bool {
	repo, ok := u.repos[key]
	if !ok {
		for _, ev := range batch {
			ev.SetStep(event.Step{Name: "git", Repo: key, Status: event.Failed, Error: fmt.Sprintf("no repository named %q is configured", key), At: time.Now()})
		}
		return false
	}
	// Retried events whose push landed before a crash are recorded, not applied again: their
	// commit's trailers name them.
	landed := u.alreadyLanded(ctx, log, repo, batch)
	if len(landed) > 0 {
		var rest []*event.Event
		for _, ev := range batch {
			if c, ok := landed[ev.ID]; ok {
				ev.SetStep(event.Step{Name: "git", Repo: key, Status: event.Succeeded, Commit: c, At: time.Now(),
					Detail: "pushed by an earlier attempt"})
				continue
			}
			rest = append(rest, ev)
		}
		if len(rest) == 0 {
			return false
		}
		batch = rest
	}
	// The latest event per target wins; earlier ones are superseded and share its commit.
	latest := map[string]*event.Event{}
	for _, ev := range batch {
		for _, t := range ev.Targets {
			if t.Repo != "" {
				latest[t.Key()] = ev
			}
		}
	}
	var results map[string]*outcome
	edit := func(base fs.FS) (map[string][]byte, string, error) {
		results = map[string]*outcome{}
		over := &overlay{base: base, files: map[string][]byte{}}
		for _, ev := range batch {
			out := &outcome{}
			results[ev.ID] = out
			pushed, err := imageref.Parse(ev.Push.Ref())
			if err != nil {
				out.err = err
				continue
			}
			// One budget per event, across its targets.
			budget := u.opts.Budget
			for _, t := range ev.Targets {
				if t.Repo == "" || latest[t.Key()] != ev {
					continue
				}
				changes, skipped, err := setImage(over, t, pushed, manifests.Options{Pin: manifests.Pin(ev.Pin), WriteHost: ev.Push.ExplicitHost,
					NoDowngrade: ev.NoDowngrade, RegistryAliases: u.opts.RegistryAliases, Budget: &budget})
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
		}
		// The trailers name the events this commit carries out: those that change a value, and the
		// ones they superseded. An event that changes nothing (its push already landed, perhaps
		// from a process that died before recording it) is left out, so no event is ever in two
		// commits' trailers.
		changed := map[string]bool{}
		for _, ev := range batch {
			changed[ev.ID] = anyChange(results[ev.ID].changes)
		}
		var applied []*event.Event
		for _, ev := range batch {
			if results[ev.ID].err != nil {
				continue
			}
			carried := changed[ev.ID]
			for _, t := range ev.Targets {
				if w := latest[t.Key()]; t.Repo != "" && w != ev && changed[w.ID] {
					carried = true
				}
			}
			if carried {
				applied = append(applied, ev)
			}
		}
		msg, err := commitMessage(u.opts.CommitTemplates[key], applied, func(id string) []event.Change { return results[id].changes })
		return over.files, msg, err
	}
	started := time.Now()
	commit, err := repo.Apply(ctx, edit)
	now := time.Now()
	m := u.opts.Metrics
	if commit.Attempts > 1 {
		m.gitRetries.Add(float64(commit.Attempts - 1))
	}
	if err != nil {
		m.gitDuration.WithLabelValues("error").Observe(now.Sub(started).Seconds())
	} else {
		m.gitDuration.WithLabelValues("ok").Observe(now.Sub(started).Seconds())
		if commit.Changed {
			m.gitCommits.Inc()
			for _, ev := range batch {
				m.pushLatency.Observe(now.Sub(ev.ReceivedAt).Seconds())
			}
		}
	}
	if err != nil {
		retry := !errors.Is(err, gitops.ErrRejected) && !errors.Is(err, gitops.ErrAuth)
		log.Error("git step failed", "events", eventIDs(batch), "err", err, "retry", retry)
		for _, ev := range batch {
			ev.SetStep(event.Step{Name: "git", Repo: key, Status: event.Failed, Error: err.Error(), At: now})
		}
		return retry
	}
	for _, ev := range batch {
		out := results[ev.ID]
		st := event.Step{Name: "git", Repo: key, At: now, Commit: commit.Hash, Skipped: out.skipped}
		if tmpl := u.opts.CommitURLs[key]; tmpl != "" && commit.Changed {
			st.URL = strings.ReplaceAll(tmpl, "{sha}", commit.Hash)
		}
		switch {
		case out.err != nil:
			st.Status, st.Error, st.Commit = event.Failed, out.err.Error(), ""
		case isSuperseded(ev, latest):
			st.Status = event.Succeeded
			st.Detail = "superseded by a later push in the same batch"
		case len(out.changes) == 0 && len(out.ignored) > 0:
			st.Status, st.Commit = event.Ignored, ""
			st.Detail = strings.Join(out.ignored, "; ")
		default:
			st.Status = event.Succeeded
			st.Changes = out.changes
			files := map[string]bool{}
			for _, c := range out.changes {
				if c.Old != c.New {
					files[c.File] = true
				}
			}
			for f := range files {
				st.Files = append(st.Files, f)
			}
			sort.Strings(st.Files)
			if len(files) == 0 {
				st.Detail = "unchanged: the image is already at the wanted value"
			}
		}
		ev.SetStep(st)
	}
	log.Info("git step done", "events", eventIDs(batch), "commit", commit.Hash, "changed", commit.Changed, "attempts", commit.Attempts)
	return false
}

// alreadyLanded finds, for events tried before (a crash or a restart interrupted them), the commit
// an earlier attempt pushed for them, if any.
func (u *Updater) alreadyLanded(ctx context.Context, log *slog.Logger, repo Repo, batch []*event.Event) map[string]string {
	var ids []string
	for _, ev := range batch {
		if ev.Attempts > 1 {
			ids = append(ids, ev.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	walk := func(fn gitops.LogFunc) error { return repo.Log(ctx, 500, fn) }
	found, err := audit.Reader{Committer: repo.Identity()}.FindEvents(walk, ids)
	if err != nil {
		log.Warn("looking for earlier commits of retried events", "err", err)
	}
	return found
}

func anyChange(cs []event.Change) bool {
	for _, c := range cs {
		if c.Old != c.New {
			return true
		}
	}
	return false
}

func isSuperseded(ev *event.Event, latest map[string]*event.Event) bool {
	for _, t := range ev.Targets {
		if t.Repo != "" && latest[t.Key()] != ev {
			return true
		}
	}
	return false
}

// setImage applies one target's rewrite to the overlay. It returns the changes, with every value
// made one line (they come from the manifests, which many people commit to, and reach commit
// messages and mail), and the files the budget skipped.
func setImage(fsys *overlay, t event.Target, pushed imageref.Ref, opts manifests.Options) ([]event.Change, []string, error) {
	var res manifests.Result
	var err error
	switch {
	case t.Marker != "":
		res, err = manifests.SetMarkers(fsys, t.Path, t.Marker, pushed, opts)
	case t.Values != nil:
		v := t.Values
		res, err = manifests.SetValues(fsys, t.Path, manifests.Values{File: v.File, Image: v.Image, Registry: v.Registry,
			Repository: v.Repository, Tag: v.Tag, Digest: v.Digest}, pushed, opts)
	default:
		var mt manifests.Target
		if t.Workload != "" {
			kind, name, perr := manifests.ParseWorkload(t.Workload)
			if perr != nil {
				return nil, nil, perr
			}
			mt = manifests.Target{Kind: kind, Name: name, Namespace: t.Namespace, Container: t.Container}
		}
		res, err = manifests.SetImage(fsys, t.Path, mt, pushed, opts)
	}
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

// finishMany finishes each event, notifies (one report per commit), records them all in one
// transaction, then wakes their waiters.
func (u *Updater) finishMany(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	for _, ev := range evs {
		u.finish(ctx, log, ev)
	}
	u.notifyAll(ctx, log, evs)
	u.saveMany(ctx, log, evs)
	for _, ev := range evs {
		u.opts.Metrics.events.WithLabelValues(ev.Hook, ev.Push.Source, string(ev.Status)).Inc()
		u.untrack(ev.ID)
		u.wake(ev.ID)
		log.Info("event done", "event", ev.ID, "hook", ev.Hook, "status", ev.Status)
	}
}

// finish runs the steps after git (direct apply) and settles the status. An event already settled
// as ignored (a duplicate delivery, a replay) skips them.
func (u *Updater) finish(ctx context.Context, log *slog.Logger, ev *event.Event) {
	if ev.Status == event.Ignored {
		ev.UpdatedAt = time.Now()
		return
	}
	// Direct-only events are ordered here, where they are applied one after another.
	if ev.Repo() == "" {
		if why := u.stale(ctx, ev); why != "" {
			ev.SetStep(event.Step{Name: "apply", Status: event.Ignored, Detail: why, At: time.Now()})
			ev.Status = event.Ignored
			ev.UpdatedAt = time.Now()
			return
		}
	}
	gitFailed := false
	if st, ok := ev.Step("git"); ok && st.Status == event.Failed {
		gitFailed = true
	}
	// A failed commit does not stop the direct apply: the cluster path is independent.
	for _, t := range ev.Targets {
		if t.Cluster == "" {
			continue
		}
		if u.applier == nil {
			ev.SetStep(event.Step{Name: "apply", Cluster: t.Cluster, Status: event.Failed, Error: "direct apply is not configured", At: time.Now()})
			continue
		}
		st, err := u.applier.Apply(ctx, t, ev)
		st.Name, st.Cluster, st.At = "apply", t.Cluster, time.Now()
		if err != nil {
			st.Status, st.Error = event.Failed, err.Error()
		} else {
			u.opts.Metrics.applyLatency.Observe(st.At.Sub(ev.ReceivedAt).Seconds())
		}
		ev.SetStep(st)
	}
	if ev.Repo() == "" {
		u.recordApplied(ctx, log, []*event.Event{ev}, func(t event.Target) bool { return t.Cluster != "" })
	}
	// Ignored when every step was (another repository, a duplicate); failed when any step failed.
	status := event.Ignored
	for _, s := range ev.Steps {
		switch {
		case s.Status == event.Failed:
			status = event.Failed
		case s.Status == event.Succeeded && status != event.Failed:
			status = event.Succeeded
		}
	}
	if ev.Error != "" {
		status = event.Failed
	}
	ev.Status = status
	if gitFailed && ev.Error == "" {
		st, _ := ev.Step("git")
		ev.Error = st.Error
	}
	ev.UpdatedAt = time.Now()
}

// notifyAll sends the reports of finished events: one per group of events carried by the same
// commit with the same recipients and outcome (a burst coalesced into one commit is one mail), one
// per event otherwise. A failed notification never fails an update; it is recorded on the events.
func (u *Updater) notifyAll(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if u.notifier == nil {
		return
	}
	groups := map[string][]*event.Event{}
	var order []string
	for _, ev := range evs {
		if ev.Status == event.Ignored {
			continue
		}
		u.scrub(ev)
		key := ev.ID
		if st, ok := ev.Step("git"); ok && st.Status == event.Succeeded && st.Commit != "" && ev.Status == event.Succeeded && len(ev.Targets) == 1 {
			route, _ := json.Marshal(ev.Mail)
			key = st.Commit + "\x00" + string(route)
		}
		if groups[key] == nil {
			order = append(order, key)
		}
		groups[key] = append(groups[key], ev)
	}
	for _, key := range order {
		group := groups[key]
		// The report is about the event journaled last: the one whose push the commit carries.
		sort.SliceStable(group, func(i, j int) bool { return group[i].Seq > group[j].Seq })
		st := event.Step{Name: "notify", Status: event.Succeeded, At: time.Now()}
		if err := u.notifier.Notify(ctx, group...); err != nil {
			st.Status, st.Error = event.Failed, u.opts.Redactor.String(err.Error())
			log.Warn("notification failed", "events", eventIDs(group), "err", err)
			u.opts.Metrics.notify.WithLabelValues("failed").Inc()
		} else {
			u.opts.Metrics.notify.WithLabelValues("sent").Inc()
		}
		for _, ev := range group {
			ev.SetStep(st)
		}
	}
}

// scrub masks the configuration's secrets in everything an event records from outside: errors from
// git, SMTP and the cluster can quote a URL with its credentials.
func (u *Updater) scrub(ev *event.Event) {
	r := u.opts.Redactor
	ev.Error = r.String(ev.Error)
	for i := range ev.Steps {
		s := &ev.Steps[i]
		s.Error, s.Detail, s.URL = r.String(s.Error), r.String(s.Detail), r.String(s.URL)
		for j := range s.Skipped {
			s.Skipped[j] = r.String(s.Skipped[j])
		}
	}
}

func (u *Updater) saveMany(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	for _, ev := range evs {
		u.scrub(ev)
	}
	if err := u.journal.UpdateMany(ctx, evs); err != nil {
		log.Error("journal update", "events", len(evs), "err", err)
	}
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
			cp := *ev
			cp.Hook = event.OneLine(ev.Hook)
			cp.Push.Image, cp.Push.Pusher, cp.Push.Source, cp.Push.Digest = event.OneLine(ev.Push.Image), event.OneLine(ev.Push.Pusher),
				event.OneLine(ev.Push.Source), event.OneLine(ev.Push.Digest)
			clean[i] = &cp
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

// overlay layers a batch's pending edits over the branch tip, so that two events touching the same
// file in one batch see each other's changes.
type overlay struct {
	base  fs.FS
	files map[string][]byte
}

func (o *overlay) Open(name string) (fs.File, error) {
	if data, ok := o.files[name]; ok {
		return &memFile{Reader: bytes.NewReader(data), name: path.Base(name), size: int64(len(data))}, nil
	}
	return o.base.Open(name)
}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return f.name }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o644 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }

func (o *overlay) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(o.base, name) }

func (o *overlay) ReadFile(name string) ([]byte, error) {
	if data, ok := o.files[name]; ok {
		return data, nil
	}
	return fs.ReadFile(o.base, name)
}

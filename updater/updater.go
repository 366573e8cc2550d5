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
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/oci"
	"github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/retry"
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

// Resolver asks a registry for a tag's digest (verify: registry); a want that differs is an error.
type Resolver interface {
	Resolve(ctx context.Context, image, want string) (string, error)
}

// Signatures checks that an image's digest carries a signature the hook trusts (verify: cosign).
type Signatures interface {
	Check(ctx context.Context, hook, image, digest string) error
}

// Options tunes retries.
type Options struct {
	// Resolver verifies pushes with their registry (nil: events asking for it fail).
	Resolver Resolver
	// Signatures gates signed hooks (nil: events asking for it fail).
	Signatures Signatures
	// RetryBase is the first delay after a failed git batch; it doubles up to RetryMax.
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxAttempts bounds the git batches tried for one event before it fails.
	MaxAttempts int
	// RegistryAliases groups registry hosts that serve the same repositories (see manifests).
	RegistryAliases [][]string
	// Metrics receives the flow's measurements (nil: not exported).
	Metrics *Metrics
	// Retention is how long finished events stay in the journal (0: 30 days).
	Retention time.Duration
	// Redactor masks the configuration's secrets in what events record (errors from git, SMTP,
	// the cluster), before they are stored, served or mailed.
	Redactor *redact.Redactor
	// Budget bounds what one event reads of the manifests (per-file size, parsed bytes and nodes).
	Budget manifests.Budget
	// Peers, when set, shares the work with other replicas of a shared journal (nil: this process
	// works every queue).
	Peers Peers
}

// Peers is the other replicas, as the flow sees them: who works which queue, and telling them
// about events journaled or finished here.
type Peers interface {
	// Owns reports whether this replica works the queue of key (a repository, or a cluster's
	// direct-only queue).
	Owns(key string) bool
	// Prove checks in the shared database, within a deadline, that this replica still holds the
	// queue of key: an error means it must not write as its owner.
	Prove(ctx context.Context, key string) error
	// Submitted tells the owner of key that event id was journaled for it.
	Submitted(ctx context.Context, key, id string)
	// Finished tells every replica that these events are done (their ?wait= callers answer).
	Finished(ctx context.Context, ids []string)
}

// Repository is one manifests repository as the flow uses it: one value per repository, so that a
// new per-repository setting (a write-back mode, a watch) is one field here.
type Repository struct {
	Git Repo
	// CommitURL links a commit in reports, with {sha} for the commit ("" for none).
	CommitURL string
	// Template, when set, writes the commit message's subject and body (data: CommitData);
	// imagehook's trailers always follow it.
	Template *template.Template
	// Index, when set, remembers where images live in the repository (manifests.Index).
	Index *manifests.Index
	// Review, when set, writes through pull requests instead of pushing to the branch.
	Review *Review
	// Deploy, when set, follows each pushed commit until it runs (the deploy step).
	Deploy Tracker
}

// Tracker follows a commit until its GitOps tool deployed it and the workloads are ready. An
// error means it was interrupted (shutdown): the event is followed again after a restart.
type Tracker interface {
	Track(ctx context.Context, commit string, files []string, changes []event.Change) (event.Step, error)
}

// CommitData is what a commit message template sees.
type CommitData struct {
	Events  []*event.Event
	Changes []event.Change
}

// Updater runs the flow. Create it with New, then call Run.
type Updater struct {
	journal  journal.Journal
	repos    map[string]Repository
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
func New(j journal.Journal, repos map[string]Repository, applier Applier, notifier notify.Notifier, log *slog.Logger, opts Options) *Updater {
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
	for _, r := range repos {
		if r.Review != nil {
			r.Review.init()
		}
	}
	return &Updater{journal: j, repos: repos, applier: applier, notifier: notifier, log: log, opts: opts,
		queues: map[string]*queue{}, waiters: map[string][]chan struct{}{}, tracked: map[string]bool{}}
}

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
		if ev.Status == event.AwaitingMerge && u.adopt(ev) {
			continue
		}
		u.enqueue(ev)
	}
	u.followClosed(ctx, "")
	for key, r := range u.repos {
		if r.Review != nil {
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				u.watch(ctx, key, r.Review)
			}()
		}
	}
	u.prune(ctx)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.wg.Wait()
			for name, r := range u.repos {
				if r.Index != nil {
					if err := r.Index.Save(true); err != nil {
						u.log.Warn("saving the manifests index", "repo", name, "err", err)
					}
				}
			}
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
	if !u.enqueue(ev) && u.opts.Peers != nil {
		u.opts.Peers.Submitted(context.WithoutCancel(ctx), queueKey(ev), ev.ID)
	}
	return nil
}

// Take queues one event another replica journaled for a queue this replica works.
func (u *Updater) Take(ctx context.Context, id string) error {
	ev, err := u.journal.Get(ctx, id)
	if err != nil {
		return err
	}
	if !ev.Status.Done() && ev.Status != event.AwaitingMerge {
		u.enqueue(ev)
	}
	return nil
}

// Wake answers the ?wait= callers of an event another replica finished.
func (u *Updater) Wake(id string) { u.wake(id) }

// Resume queues the journal's unfinished events of key: this replica has just become its owner,
// or was told of new events for it.
func (u *Updater) Resume(ctx context.Context, key string) error {
	pending, err := u.journal.Pending(ctx)
	if err != nil {
		return err
	}
	for _, ev := range pending {
		if queueKey(ev) != key {
			continue
		}
		if ev.Status == event.AwaitingMerge && u.adopt(ev) {
			continue
		}
		u.enqueue(ev)
	}
	u.followClosed(ctx, key)
	return nil
}

// QueueKey names the queue of the events of a repository ("" and cluster: the direct-only
// queue of that cluster), for replicas to share the queues out.
func QueueKey(repo, cluster string) string {
	if repo != "" {
		return repo
	}
	return clusterQueue + cluster
}

// Wait blocks until the event is done or ctx ends, and returns its latest state.
func (u *Updater) Wait(ctx context.Context, id string) (*event.Event, error) {
	ch := make(chan struct{})
	u.mu.Lock()
	u.waiters[id] = append(u.waiters[id], ch)
	u.mu.Unlock()
	defer u.unwait(id, ch)
	ev, err := u.journal.Get(ctx, id)
	// A change awaiting its pull request's merge is answered as it stands: merges take hours.
	if err != nil || ev.Status.Done() || ev.Status == event.AwaitingMerge {
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
// It reports false when another replica works that queue.
func (u *Updater) enqueue(ev *event.Event) bool {
	key := queueKey(ev)
	if u.opts.Peers != nil && !u.opts.Peers.Owns(key) {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tracked[ev.ID] {
		return true
	}
	u.tracked[ev.ID] = true
	q := u.queueLocked(key)
	q.ids = append(q.ids, ev.ID)
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return true
}

// queueLocked returns the queue of key, starting its worker and finisher on first use. It must be
// called with u.mu held.
func (u *Updater) queueLocked(key string) *queue {
	q, ok := u.queues[key]
	if !ok {
		q = &queue{signal: make(chan struct{}, 1), finSignal: make(chan struct{}, 1)}
		u.queues[key] = q
		if u.ctx != nil {
			u.startWorker(key, q)
		}
	}
	return q
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

// MaxBatch is the most events one batch of a queue takes: a burst up to it is one commit, and a
// backlog of any length drains in batches of it, within bounded memory.
const MaxBatch = 1000

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
			if len(ids) > MaxBatch {
				// A backlog drains in bounded batches: what one batch loads stays the same
				// however long the queue grew.
				ids, q.ids = ids[:MaxBatch:MaxBatch], slices.Clone(ids[MaxBatch:])
			}
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
	if u.opts.Peers != nil && !u.opts.Peers.Owns(key) {
		// Another replica took the queue over (this one lost its lock): it works these from the
		// journal.
		for _, id := range ids {
			u.untrack(id)
		}
		return
	}
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
		dup, err := u.journal.Duplicate(ctx, ev)
		if err == nil && dup != "" {
			// A registry re-delivering the same push: applying it again could only undo a later change.
			u.ignore(ctx, log, ev, event.ReasonDuplicate, "duplicate delivery of event "+dup)
			continue
		}
		var reason event.Reason
		var why string
		if err == nil && ev.Repo() != "" {
			reason, why, err = u.stale(ctx, ev)
		}
		if err != nil {
			// What was applied before is unknown: guessing "nothing" could roll a target back or
			// apply a replay. The event waits and is asked again, as for an unreachable registry.
			u.journalUnavailable(stop, log, key, ev, err)
			continue
		}
		if why != "" {
			u.ignore(ctx, log, ev, reason, why)
			continue
		}
		if ev.Verify {
			switch u.verify(ctx, log, ev) {
			case verifyFailed:
				continue
			case verifyUnreachable:
				// Accepted means applied: a registry that cannot be reached now is asked again
				// later, as a git server is, without holding up the repository's other events.
				ev.Attempts++
				go u.requeue(stop, log, key, []*event.Event{ev}, "registry unreachable")
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
		retry := u.gitStep(ctx, log, repo, batch)
		if u.opts.Peers != nil && !u.opts.Peers.Owns(key) {
			// This replica lost the queue during the step (its database session broke): what it
			// did not push, the new owner does from the journal, which this one leaves as it was.
			log.Warn("queue lost during a batch; the new owner continues from the journal", "events", eventIDs(batch))
			for _, ev := range batch {
				u.untrack(ev.ID)
			}
			return
		}
		if retry {
			u.requeue(stop, log, key, batch, "git step failed")
			return
		}
		u.recordApplied(ctx, log, batch, func(t event.Target) bool { return t.Repo != "" })
		// The git outcome is visible at once (GET /events), whatever apply and mail take.
		u.saveMany(ctx, log, batch)
		// Changes in a pull request finish when it is merged or closed (checkReviews); whoever
		// waits for them hears now.
		batch = slices.DeleteFunc(batch, func(ev *event.Event) bool {
			if ev.Status == event.AwaitingMerge {
				u.wake(ev.ID)
				return true
			}
			return false
		})
		if len(batch) == 0 {
			return
		}
	}
	// Still "running" in the journal until the finisher is done: resumed on restart.
	u.handOver(q, batch)
}

// verifyOutcome is what verify decided.
type verifyOutcome int

const (
	verified verifyOutcome = iota
	verifyFailed
	verifyUnreachable
)

// verify resolves the pushed tag in its registry before anything is written: a tag the registry
// does not have, a digest that differs, refused credentials, or (for signed hooks) no valid
// signature of that digest fail the event; otherwise the registry's digest is the one written
// and recorded. A registry that does not answer leaves the event to be tried again.
func (u *Updater) verify(ctx context.Context, log *slog.Logger, ev *event.Event) verifyOutcome {
	st := event.Step{Name: event.StepVerify, Status: event.Succeeded, At: time.Now()}
	var digest string
	// What the registry said is final; only a failure to reach it is worth another try (the
	// event is requeued with the git step's backoff).
	final := func(err error) bool {
		return errors.Is(err, oci.ErrNoTag) || errors.Is(err, oci.ErrDigestMismatch) || errors.Is(err, oci.ErrAuth) || errors.Is(err, oci.ErrUnsigned) ||
			errors.Is(err, oci.ErrNotConfigured)
	}
	err := errors.New("verify: no registry client is configured")
	if u.opts.Resolver != nil {
		digest, err = u.opts.Resolver.Resolve(ctx, ev.Push.Image, ev.Push.Digest)
	}
	if err == nil && ev.Signed {
		err = errors.New("verify: no signature checker is configured")
		if u.opts.Signatures != nil {
			err = u.opts.Signatures.Check(ctx, ev.Hook, ev.Push.Image, digest)
		}
	}
	configured := u.opts.Resolver != nil && (!ev.Signed || u.opts.Signatures != nil)
	if err != nil && configured && !final(err) {
		st.Status, st.Error = event.Queued, err.Error()
		ev.SetStep(st)
		return verifyUnreachable
	}
	if err != nil {
		st.Status, st.Error, st.Reason = event.Failed, err.Error(), event.ReasonOf(err)
		ev.SetStep(st)
		ev.Error = "verify: " + err.Error()
		log.Warn("push not verified by its registry", "event", ev.ID, "err", err)
		u.finishMany(ctx, log, []*event.Event{ev})
		return verifyFailed
	}
	ev.Push.Digest = digest
	st.Detail = "registry digest " + digest
	if ev.Signed {
		st.Detail += ", cosign signature verified"
	}
	ev.SetStep(st)
	return verified
}

// ignore settles an event that must not be applied (a duplicate, a replay, a push overtaken by a
// later one) with the reason.
func (u *Updater) ignore(ctx context.Context, log *slog.Logger, ev *event.Event, reason event.Reason, why string) {
	ev.SetStep(event.Step{Name: event.StepGit, Repo: ev.Repo(), Status: event.Ignored, Reason: reason, Detail: why, At: time.Now()})
	ev.Status = event.Ignored
	log.Info("event ignored", "event", ev.ID, "hook", ev.Hook, "reason", reason, "detail", why)
	u.finishMany(ctx, log, []*event.Event{ev})
}

// journalUnavailable leaves an event whose applied history could not be read queued, with the
// reason on its git step, and asks again after the git step's backoff.
func (u *Updater) journalUnavailable(stop context.Context, log *slog.Logger, key string, ev *event.Event, err error) {
	ev.SetStep(event.Step{Name: event.StepGit, Repo: ev.Repo(), Status: event.Queued, Reason: event.ReasonJournalUnavailable,
		Detail: "what the target runs could not be read from the journal; waiting for it", Error: err.Error(), At: time.Now()})
	ev.Attempts++
	go u.requeue(stop, log, key, []*event.Event{ev}, "journal unavailable")
}

// stale says why an event must not be applied to its targets, or "": an event journaled later was
// already applied to one of them (journal order wins, whatever order the queue saw), or the push is
// older, by the registry's own clock, than the push the target runs — a replayed delivery — unless
// its hook allows older pushes (a deliberate rollback). A journal that cannot answer is an error,
// never "nothing applied".
func (u *Updater) stale(ctx context.Context, ev *event.Event) (event.Reason, string, error) {
	for _, t := range ev.Targets {
		a, err := u.journal.LastApplied(ctx, t.Key())
		if err != nil {
			return "", "", err
		}
		if a.Event == "" || a.Event == ev.ID {
			continue
		}
		if a.Seq > ev.Seq {
			return event.ReasonSuperseded, "superseded: event " + a.Event + ", journaled later, was already applied", nil
		}
		if !ev.AllowOlder && !ev.Push.PushedAt.IsZero() && ev.Push.PushedAt.Before(a.PushedAt) {
			return event.ReasonOlderPush, fmt.Sprintf("older push: pushed at %s, but the target already runs a push from %s (event %s); set the hook's allowOlder to roll back on purpose",
				ev.Push.PushedAt.UTC().Format(time.RFC3339), a.PushedAt.UTC().Format(time.RFC3339), a.Event), nil
		}
	}
	return "", "", nil
}

// recordApplied remembers, per target, the latest event whose step for it succeeded: the base of
// stale's rules. which selects the targets the step covered.
func (u *Updater) recordApplied(ctx context.Context, log *slog.Logger, batch []*event.Event, which func(event.Target) bool) {
	for _, ev := range batch {
		name := event.StepGit
		if ev.Repo() == "" {
			name = event.StepApply
		}
		st, ok := ev.Step(name)
		if !ok || st.Status != event.Succeeded {
			continue
		}
		for _, t := range ev.Targets {
			if !which(t) {
				continue
			}
			u.setApplied(ctx, log, t.Key(), journal.Applied{Seq: ev.Seq, PushedAt: ev.Push.PushedAt, Event: ev.ID})
		}
	}
}

// waitsForJournal reports whether the event waits because the journal could not be read.
func waitsForJournal(ev *event.Event) bool {
	st, ok := ev.Step(event.StepGit)
	return ok && st.Status == event.Queued && st.Reason == event.ReasonJournalUnavailable
}

// noDirectApply reports whether a git step's reason keeps the event off the clusters.
func noDirectApply(r event.Reason) bool {
	switch r {
	case event.ReasonMergedOtherContent, event.ReasonForeignPullRequest, event.ReasonForeignCommit:
		return true
	}
	return false
}

// setApplied records what a target runs, retrying until the journal takes it: a lost record would
// let a replay or an older push roll the target back. The change is already pushed, so giving up
// is no option; a stop leaves the event running in the journal, and the next start finds its
// commit and records it then.
func (u *Updater) setApplied(ctx context.Context, log *slog.Logger, key string, a journal.Applied) {
	_ = u.untilJournal(log, "recording the applied push", a.Event, func() error { return u.journal.SetApplied(ctx, key, a) })
}

// staleWaiting is stale for the finisher, which cannot hand an event back to its queue: it asks
// again until the journal answers (or the service stops, leaving the event running in the journal
// for the next start).
func (u *Updater) staleWaiting(ctx context.Context, log *slog.Logger, ev *event.Event) (reason event.Reason, why string, err error) {
	err = u.untilJournal(log, "reading what the target runs", ev.ID, func() (err error) {
		reason, why, err = u.stale(ctx, ev)
		return err
	})
	return reason, why, err
}

// untilJournal calls fn until it succeeds, with the git step's backoff between tries; only the
// service stopping ends it early (with that error).
func (u *Updater) untilJournal(log *slog.Logger, what, id string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		delay := u.backoff().Delay(attempt)
		log.Warn(what+", will retry", "event", id, "in", delay, "err", err)
		if err := retry.Sleep(u.runContext(), delay); err != nil {
			return err
		}
	}
}

// backoff is the git step's backoff, which every retry of the flow shares.
func (u *Updater) backoff() retry.Backoff {
	return retry.Backoff{First: u.opts.RetryBase, Min: u.opts.RetryBase, Max: u.opts.RetryMax}
}

// requeue puts a batch back after a transient git failure, after a backoff; events over their
// attempt budget fail instead.
func (u *Updater) requeue(stop context.Context, log *slog.Logger, key string, batch []*event.Event, why string) {
	var again, gaveUp []*event.Event
	for _, ev := range batch {
		// An event waiting for the journal is not failing: it waits as long as the journal is
		// down (what it would do to its targets is unknown until then).
		if ev.Attempts >= u.opts.MaxAttempts && !waitsForJournal(ev) {
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
	delay := u.backoff().Delay(again[0].Attempts)
	log.Warn(why+", will retry", "events", eventIDs(again), "in", delay)
	if retry.Sleep(stop, delay) != nil {
		return // still queued in the journal: the next start resumes them
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

// finishMany finishes each event, notifies (one report per commit), records them all in one
// transaction, then wakes their waiters.
func (u *Updater) finishMany(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	for _, ev := range evs {
		u.finish(ctx, log, ev)
	}
	if follow, rest := u.toFollow(evs); len(follow) > 0 {
		// Following a deploy takes minutes: it runs beside the queue, which goes on with the next
		// batches; the events stay "running" (resumed after a restart) until it ends.
		u.completeMany(ctx, log, rest)
		for _, ev := range follow {
			ev.Status = event.Running
			ev.SetStep(event.Step{Name: event.StepDeploy, Status: event.Running, At: time.Now(), Detail: "waiting for the GitOps tool"})
		}
		u.saveMany(ctx, log, follow)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			if u.follow(log, follow) {
				u.completeMany(ctx, log, follow)
			}
		}()
		return
	}
	u.completeMany(ctx, log, evs)
}

// completeMany reports, stores and releases finished events.
func (u *Updater) completeMany(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	u.notifyAll(ctx, log, evs)
	u.saveMany(ctx, log, evs)
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		u.opts.Metrics.events.WithLabelValues(ev.Hook, ev.Push.Source, string(ev.Status)).Inc()
		u.untrack(ev.ID)
		u.wake(ev.ID)
		ids = append(ids, ev.ID)
		log.Info("event done", "event", ev.ID, "hook", ev.Hook, "status", ev.Status)
	}
	if u.opts.Peers != nil {
		u.opts.Peers.Finished(ctx, ids)
	}
}

// finish runs the steps after git (direct apply) and settles the status. An event already settled
// as ignored (a duplicate delivery, a replay) skips them.
func (u *Updater) finish(ctx context.Context, log *slog.Logger, ev *event.Event) {
	if ev.Status == event.Ignored || ev.Status == event.Cancelled {
		ev.UpdatedAt = time.Now()
		return
	}
	// Direct-only events are ordered here, where they are applied one after another.
	if ev.Repo() == "" {
		reason, why, err := u.staleWaiting(ctx, log, ev)
		if err != nil {
			ev.SetStep(event.Step{Name: event.StepApply, Status: event.Queued, Reason: event.ReasonJournalUnavailable, Error: err.Error(), At: time.Now()})
			return // still running in the journal: the next start resumes it
		}
		if why != "" {
			ev.SetStep(event.Step{Name: event.StepApply, Status: event.Ignored, Reason: reason, Detail: why, At: time.Now()})
			ev.Status = event.Ignored
			ev.UpdatedAt = time.Now()
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
		ev.UpdatedAt = time.Now()
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
		ev.UpdatedAt = time.Now()
		return
	}
	for _, t := range ev.Targets {
		if t.Cluster == "" {
			continue
		}
		if u.applier == nil {
			ev.SetStep(event.Step{Name: event.StepApply, Cluster: t.Cluster, Status: event.Failed, Error: "direct apply is not configured", At: time.Now()})
			continue
		}
		st, err := u.applier.Apply(ctx, t, ev)
		st.Name, st.Cluster, st.At = event.StepApply, t.Cluster, time.Now()
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
	ev.Settle()
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
		// Nothing to report: an ignored push changed nothing, and a pull request closed unmerged
		// was somebody's decision, seen where it was made.
		if ev.Status == event.Ignored || ev.Status == event.Cancelled {
			continue
		}
		u.scrub(ev)
		key := ev.ID
		if st, ok := ev.Step(event.StepGit); ok && st.Status == event.Succeeded && st.Commit != "" && ev.Status == event.Succeeded && len(ev.Targets) == 1 {
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
		st := event.Step{Name: event.StepNotify, Status: event.Succeeded, At: time.Now()}
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

// ReadDir lists the base directory. An entry on the path of a pending edit loses its object hash
// (the hash names the base's content, not the edited one), so an index reads it afresh.
func (o *overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(o.base, name)
	if err != nil || len(o.files) == 0 {
		return entries, err
	}
	for i, e := range entries {
		p := path.Join(name, e.Name())
		for f := range o.files {
			if f == p || strings.HasPrefix(f, p+"/") {
				entries[i] = unhashed{e}
				break
			}
		}
	}
	return entries, nil
}

// unhashed hides a directory entry's object hash.
type unhashed struct{ fs.DirEntry }

// ObjectHash returns "": the entry's content differs from its base's.
func (unhashed) ObjectHash() string { return "" }

func (o *overlay) ReadFile(name string) ([]byte, error) {
	if data, ok := o.files[name]; ok {
		return data, nil
	}
	return fs.ReadFile(o.base, name)
}

// PokeReviews makes imagehook read a repository's pull requests now (its forge sent a webhook). It
// reports whether the repository is written through pull requests.
func (u *Updater) PokeReviews(repo string) bool {
	r, ok := u.repos[repo]
	if !ok || r.Review == nil {
		return false
	}
	r.Review.Poke()
	return true
}

// Package updater is imagehook's flow: it journals each accepted event and carries it through
// named steps, one queue per manifests repository (or per cluster, for direct-only events):
//
//   - admit (admit.go) decides, per event, run, ignore, retry later, or verify first — duplicate
//     deliveries and stale pushes are ignored, and registry verification runs beside the queue;
//   - the git step (gitstep.go, review.go) plans, edits and records one commit for a batch, or
//     proposes it as a pull request, and says done, retry or lost;
//   - finish (finish.go) is the one route to the end for every outcome: direct apply, deploy
//     follow (deploy.go), then the report (report.go), sent beside the finisher.
//
// The queues (queue.go) schedule the work, track the events in flight and answer ?wait= callers;
// each queue has a worker (worker.go) for admit and git, and a finisher for the rest.
package updater

import (
	"context"
	"log/slog"
	"slices"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/redact"
)

// GitRepo is what the updater needs of a manifests repository.
type GitRepo interface {
	CommitAndPush(ctx context.Context, edit gitops.EditFunc) (gitops.Commit, error)
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

// Notifier sends the report of a group of finished events (one commit's, the first the one the
// report is about) and says what each of its notifiers sent (notify.All).
type Notifier interface {
	Report(ctx context.Context, evs ...*event.Event) []notify.Sent
}

var _ Notifier = notify.All(nil)

// Options tunes retries.
type Options struct {
	// Resolver verifies pushes with their registry (nil: events asking for it fail).
	Resolver Resolver
	// Signatures gates signed hooks (nil: events asking for it fail).
	Signatures Signatures
	// VerifyTimeout bounds one verification with the registry (0: the registry client's own
	// timeout); a registry that has not answered by then is asked again, with the git step's
	// backoff.
	VerifyTimeout time.Duration
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
	// Held, when set, is asked at admission, for each target of an event that is not a promotion,
	// whether a hook's push may be applied there (a strictly held pipeline stage says no, and why):
	// such an event is ignored with reason held. It is an option, not a setter, so that the hold is
	// in force before the first event is admitted.
	Held Holds
}

// Holds says whether a hook's push must not be applied to a target, and why (promote.Holds).
type Holds interface {
	HeldForPushes(ctx context.Context, t event.Target) (bool, string)
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
	Git GitRepo
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
	f  *flow
	rv *reviews
}

// New returns an updater; applier and notifier may be nil.
func New(j journal.Journal, repos map[string]Repository, applier Applier, notifier Notifier, log *slog.Logger, opts Options) *Updater {
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
	f := &flow{journal: j, repos: repos, applier: applier, log: log, opts: opts, verifying: map[string]chan struct{}{},
		progress: make(chan struct{}, 1)}
	f.q = newQueues(f)
	f.rep = &reporter{f: f, notifier: notifier}
	f.rv = &reviews{f: f}
	return &Updater{f: f, rv: f.rv}
}

// Run resumes the events a previous process left unfinished, then serves submissions until ctx
// ends, and waits for the batches in flight.
func (u *Updater) Run(ctx context.Context) error {
	u.f.q.start(ctx)
	pending, err := u.f.journal.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		u.f.log.Info("resuming unfinished events", "count", len(pending))
	}
	u.resume(pending, "")
	u.rv.followClosed(ctx, "")
	for key, r := range u.f.repos {
		if r.Review != nil {
			u.f.q.goFlow(func() { u.rv.watch(ctx, key, r.Review) })
		}
	}
	u.prune(ctx)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.f.q.wg.Wait()
			u.saveIndexes()
			return nil
		case <-t.C:
			u.prune(ctx)
		}
	}
}

// resume queues the unfinished events of queue key ("" for all) found in the journal; those
// awaiting a pull request's merge are followed with it instead.
func (u *Updater) resume(pending []*event.Event, key string) {
	for _, ev := range pending {
		if key != "" && queueKey(ev) != key {
			continue
		}
		if ev.Status == event.AwaitingMerge && u.rv.adopt(ev) {
			continue
		}
		u.f.q.add(ev)
	}
}

// saveIndexes stores every repository's manifests index at shutdown.
func (u *Updater) saveIndexes() {
	for name, r := range u.f.repos {
		if r.Index != nil {
			if err := r.Index.Save(true); err != nil {
				u.f.log.Warn("saving the manifests index", "repo", name, "err", err)
			}
		}
	}
}

// prune drops finished events older than the retention.
func (u *Updater) prune(ctx context.Context) {
	n, err := u.f.journal.Prune(ctx, time.Now().Add(-u.f.opts.Retention))
	if err != nil {
		u.f.log.Warn("journal prune", "err", err)
	} else if n > 0 {
		u.f.log.Info("pruned old events", "count", n)
	}
}

// Submit journals ev (the durable promise behind a 2xx) and queues it.
func (u *Updater) Submit(ctx context.Context, ev *event.Event) error {
	ev.Queue()
	if err := u.f.journal.Insert(ctx, ev); err != nil {
		return err
	}
	if !u.f.q.add(ev) && u.f.opts.Peers != nil {
		u.f.opts.Peers.Submitted(context.WithoutCancel(ctx), queueKey(ev), ev.ID)
	}
	return nil
}

// Take queues an event another replica journaled for a queue this replica works, as its
// notification told: the worker reads it with the rest of its batch and decides there, from the
// journal, whether anything is left to do (it may be done, or awaiting its pull request's merge,
// by the time it is read), so that a notified event is read once, not twice.
func (u *Updater) Take(key, id string) { u.f.q.addID(key, id) }

// Wake answers the ?wait= callers of an event another replica finished.
func (u *Updater) Wake(id string) {
	u.f.q.wake(id)
	u.f.tellProgress()
}

// Progress delivers a value whenever events finish, here or on another replica, and when this
// replica takes over a queue (or hears of new events for it): promotion passes over its gates
// then. It is the updater's to own, so that whoever cares subscribes at its own construction
// instead of the updater calling into it. Signals coalesce (one waits at most), and nothing
// blocks when nobody reads; it has one reader.
func (u *Updater) Progress() <-chan struct{} { return u.f.progress }

// Resume queues the journal's unfinished events of key: this replica has just become its owner,
// or was told of new events for it.
func (u *Updater) Resume(ctx context.Context, key string) error {
	// Only the events not yet queued here are read: a sweep of a busy queue would otherwise
	// decode its whole backlog again every few seconds, only for add to drop each one.
	ids, err := u.f.journal.PendingIDs(ctx)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(u.f.q.untracked(ids), resumeAtOnce) {
		pending, err := u.f.journal.GetMany(ctx, chunk)
		if err != nil {
			return err
		}
		u.resume(pending, key)
	}
	u.rv.followClosed(ctx, key)
	u.f.tellProgress()
	return nil
}

// resumeAtOnce is how many events a Resume reads in one query.
const resumeAtOnce = 500

// Wait blocks until the event is done or ctx ends, and returns its latest state.
func (u *Updater) Wait(ctx context.Context, id string) (*event.Event, error) {
	return u.f.q.wait(ctx, id, u.f.journal.Get)
}

// QueueDepth returns the number of events waiting in all queues.
func (u *Updater) QueueDepth() int { return u.f.q.depth() }

// PokeReviews makes imagehook read a repository's pull requests now (its forge sent a webhook). It
// reports whether the repository is written through pull requests.
func (u *Updater) PokeReviews(repo string) bool {
	r, ok := u.f.repos[repo]
	if !ok || r.Review == nil {
		return false
	}
	r.Review.Poke()
	return true
}

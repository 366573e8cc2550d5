package updater

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/retry"
)

// flow is what every step shares: the journal, the repositories, the cluster applier, the
// options, and the parts of the flow each step hands over to (the queues, the reporter, the pull
// requests).
type flow struct {
	journal journal.Journal
	repos   map[string]Repository
	applier Applier
	log     *slog.Logger
	opts    Options

	q   *queues
	rep *reporter
	rv  *reviews

	// progress signals that events finished or a queue was taken over (Progress).
	progress chan struct{}

	// verifying holds, per registry host, the slots of the verifications in flight with it.
	verifyMu  sync.Mutex
	verifying map[string]chan struct{}
}

// owns reports whether this replica works the queue of key (always, without replicas).
func (f *flow) owns(key string) bool { return f.opts.Peers == nil || f.opts.Peers.Owns(key) }

// save records events in the journal, in one transaction, with secrets masked.
func (f *flow) save(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	for _, ev := range evs {
		f.scrub(ev)
	}
	if err := f.journal.UpdateMany(ctx, evs); err != nil {
		log.Error("journal update", "events", len(evs), "err", err)
	}
}

// scrub masks the configuration's secrets in everything an event records from outside: errors from
// git, SMTP and the cluster can quote a URL with its credentials.
func (f *flow) scrub(ev *event.Event) {
	r := f.opts.Redactor
	ev.Error = r.String(ev.Error)
	for i := range ev.Steps {
		s := &ev.Steps[i]
		s.Error, s.Detail, s.URL = r.String(s.Error), r.String(s.Detail), r.String(s.URL)
		for j := range s.Skipped {
			s.Skipped[j] = r.String(s.Skipped[j])
		}
	}
}

// stale says why an event must not be applied to its targets, or "": an event journaled later was
// already applied to one of them (journal order wins, whatever order the queue saw), or the push is
// older, by the registry's own clock, than the push the target runs — a replayed delivery — unless
// its hook allows older pushes (a deliberate rollback). A journal that cannot answer is an error,
// never "nothing applied".
func (f *flow) stale(ctx context.Context, ev *event.Event, current currentFunc) (event.Reason, string, error) {
	for _, t := range ev.Targets {
		a, err := current(ctx, t.Key())
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

// tellProgress signals Progress's reader that events finished or a queue was taken over; it
// never blocks (a signal already waiting covers this one).
func (f *flow) tellProgress() {
	select {
	case f.progress <- struct{}{}:
	default:
	}
}

// heldFor says why a hook's push must not be applied to one of its targets (Options.Held), or "".
// A promotion is not asked: promotion itself never promotes into a held stage.
func (f *flow) heldFor(ctx context.Context, ev *event.Event) string {
	if f.opts.Held == nil || ev.PromotedFrom != nil {
		return ""
	}
	for _, t := range ev.Targets {
		if held, why := f.opts.Held.HeldForPushes(ctx, t); held {
			return why
		}
	}
	return ""
}

// staleWaiting is stale for the finisher, which cannot hand an event back to its queue: it asks
// again until the journal answers (or the service stops, leaving the event running in the journal
// for the next start).
func (f *flow) staleWaiting(ctx context.Context, log *slog.Logger, ev *event.Event) (reason event.Reason, why string, err error) {
	err = f.untilJournal(log, "reading what the target runs", ev.ID, func() (err error) {
		reason, why, err = f.stale(ctx, ev, f.journal.Current)
		return err
	})
	return reason, why, err
}

// currentFunc reads what a target runs (journal.Current, or a batch's memo of it).
type currentFunc func(ctx context.Context, key string) (journal.Applied, error)

// batchCurrents is journal.Current read once per target for one batch's admission: every event
// of a burst names the same few targets, and nothing the batch does is recorded before its git
// step, so one read per target answers them all (a round trip per event was most of what a
// replica's owner asked PostgreSQL during a burst).
func batchCurrents(read currentFunc) currentFunc {
	seen := map[string]journal.Applied{}
	return func(ctx context.Context, key string) (journal.Applied, error) {
		if a, ok := seen[key]; ok {
			return a, nil
		}
		a, err := read(ctx, key)
		if err == nil {
			seen[key] = a
		}
		return a, err
	}
}

// recordApplied remembers, per target, the latest event whose step for it succeeded: the base of
// stale's rules. which selects the targets the step covered. One write per event, although the
// journal keeps only the highest seq and one write per target would leave the same record: tried,
// and accepting webhooks during a burst got slower on both backends (TestReplicas, same session:
// SQLite 5,400–6,000/s against 6,500–7,400/s, the replicas 3,300–3,500/s against 3,900–4,400/s),
// the worker presumably taking the burst in more, smaller batches, each a commit's CPU. Tried
// again with profiles (40,000 webhooks, one process on SQLite): the process's CPU fell from 13.8 s
// to 9.8 s, yet accepts fell from 5,800–7,800/s to 3,700–4,100/s, because the apply work the
// per-event writes (each its own fsync) held back until after the burst ran during it instead.
// A faster worker needs accepts to go first; until then, this order is kept.
func (f *flow) recordApplied(ctx context.Context, log *slog.Logger, batch []*event.Event, which func(event.Target) bool) {
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
			if which(t) {
				f.setApplied(ctx, log, t.Key(), journal.Applied{Seq: ev.Seq, PushedAt: ev.Push.PushedAt, Event: ev.ID})
			}
		}
	}
}

// setApplied records what a target runs, retrying until the journal takes it: a lost record would
// let a replay or an older push roll the target back. The change is already pushed, so giving up
// is no option; a stop leaves the event running in the journal, and the next start finds its
// commit and records it then.
func (f *flow) setApplied(ctx context.Context, log *slog.Logger, key string, a journal.Applied) {
	_ = f.untilJournal(log, "recording the applied push", a.Event, func() error { return f.journal.SetCurrent(ctx, key, a) })
}

// untilJournal calls fn until it succeeds, with the git step's backoff between tries; only the
// service stopping ends it early (with that error).
func (f *flow) untilJournal(log *slog.Logger, what, id string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		delay := f.backoff().Delay(attempt)
		log.Warn(what+", will retry", "event", id, "in", delay, "err", err)
		if err := retry.Sleep(f.q.runContext(), delay); err != nil {
			return err
		}
	}
}

// backoff is the git step's backoff, which every retry of the flow shares.
func (f *flow) backoff() retry.Backoff {
	return retry.Backoff{First: f.opts.RetryBase, Min: f.opts.RetryBase, Max: f.opts.RetryMax}
}

// alreadyLanded finds, for events tried before (a crash or a restart interrupted them), the commit
// an earlier attempt pushed for them, if any.
func (f *flow) alreadyLanded(ctx context.Context, log *slog.Logger, repo GitRepo, batch []*event.Event) map[string]string {
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

// observeGit records a git step's measurements.
func (f *flow) observeGit(commit gitops.Commit, err error, batch []*event.Event, started time.Time) {
	m, now := f.opts.Metrics, time.Now()
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

// errNotOwner stops a git step whose queue this replica cannot prove it still works.
var errNotOwner = errors.New("this replica no longer works the queue")

// owned guards an edit with the queue's ownership, proven in the database (Peers.Prove) on every
// attempt right before the commit is built, so that a replica that lost the queue without hearing
// of it (its database session was ended, or cut off) never pushes on top of the new owner's work.
func (f *flow) owned(ctx context.Context, key string, edit gitops.EditFunc) gitops.EditFunc {
	if f.opts.Peers == nil {
		return edit
	}
	return func(fsys fs.FS) (map[string][]byte, string, error) {
		if err := f.opts.Peers.Prove(ctx, key); err != nil {
			return nil, "", fmt.Errorf("%w: %w", errNotOwner, err)
		}
		return edit(fsys)
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

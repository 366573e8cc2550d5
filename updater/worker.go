package updater

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/retry"
)

// worker runs one queue's batches: admit, then the git step, then the hand-over to the queue's
// finisher. It owns the queue's key and logger.
type worker struct {
	f   *flow
	key string
	log *slog.Logger
	q   *queue
	// ctx is the batches' context: never cancelled, so that a shutdown lets the step in flight
	// finish. Workers never use a request's context: the flow outlives the webhook call.
	ctx context.Context
	// stop ends at shutdown: backoffs and new batches stop there.
	stop context.Context
}

func (w *worker) run() {
	for {
		select {
		case <-w.stop.Done():
			return
		case <-w.q.signal:
		}
		for {
			ids := w.f.q.take(w.q)
			if len(ids) == 0 {
				break
			}
			w.batch(ids)
		}
	}
}

// batch carries the queue's waiting events through admit and the git step, and hands what ended
// to the finisher.
func (w *worker) batch(ids []string) {
	if !w.f.owns(w.key) {
		// Another replica took the queue over (this one lost its lock): it works these from the
		// journal.
		w.f.q.untrack(ids...)
		return
	}
	var run []*event.Event
	current := batchCurrents(w.f.journal.Current)
	for _, ev := range w.load(ids) {
		a := w.admit(ev, current)
		switch a.verdict {
		case admitRun:
			ev.Start()
			run = append(run, ev)
		case admitDone:
			w.f.q.untrack(ev.ID)
		case admitFollow:
		case admitElsewhere:
			w.log.Warn("event queued for another queue; moved to its own", "event", ev.ID, "queue", logKey(queueKey(ev)))
			w.f.q.untrack(ev.ID)
			w.f.q.add(ev)
		case admitIgnore:
			w.ignore(ev, a.reason, a.why)
		case admitRetry:
			w.journalUnavailable(ev, a.err)
		case admitVerify:
			w.f.q.goFlow(func() { w.verify(ev) })
		}
	}
	if len(run) == 0 {
		return
	}
	w.f.save(w.ctx, w.log, run)
	if run[0].Repo() != "" {
		switch w.gitStep(run) {
		case gitLost:
			// This replica lost the queue during the step (its database session broke): what it
			// did not push, the new owner does from the journal, which this one leaves as it was.
			w.log.Warn("queue lost during a batch; the new owner continues from the journal", "events", eventIDs(run))
			for _, ev := range run {
				w.f.q.untrack(ev.ID)
			}
			return
		case gitRetry:
			w.requeue(run, "git step failed")
			return
		}
		w.f.recordApplied(w.ctx, w.log, run, func(t event.Target) bool { return t.Repo != "" })
		// The git outcome is visible at once (GET /events), whatever apply and mail take.
		w.f.save(w.ctx, w.log, run)
		// Changes in a pull request finish when it is merged or closed; whoever waits for them
		// hears now.
		run = slices.DeleteFunc(run, func(ev *event.Event) bool {
			if ev.Status == event.AwaitingMerge {
				w.f.q.wake(ev.ID)
				return true
			}
			return false
		})
	}
	// Still "running" in the journal until the finisher is done: resumed on restart.
	w.f.q.handOver(w.key, run)
}

// load reads the batch's events from the journal, in journal order: it, not arrival at the
// queue, decides which event for a target wins. A few queries of loadAtOnce ids each: one per
// event cost the owner of a busy queue most of its reads, and one for a whole batch of up to
// MaxBatch would hold SQLite's one connection, which accepts share, for that long.
func (w *worker) load(ids []string) []*event.Event {
	var loaded []*event.Event
	for chunk := range slices.Chunk(ids, loadAtOnce) {
		evs, err := w.f.journal.GetMany(w.ctx, chunk)
		if err != nil {
			// Left to the sweep, which finds what is still waiting in the journal.
			w.log.Error("load events", "events", len(chunk), "err", err)
			w.f.q.untrack(chunk...)
			continue
		}
		if len(evs) < len(chunk) {
			w.untrackMissing(chunk, evs)
		}
		loaded = append(loaded, evs...)
	}
	sort.SliceStable(loaded, func(i, j int) bool { return loaded[i].Seq < loaded[j].Seq })
	return loaded
}

// loadAtOnce is how many events one journal read of a batch takes.
const loadAtOnce = 100

// untrackMissing lets go of the ids of chunk the journal did not return (pruned meanwhile, or
// never journaled: a notification can only name an id).
func (w *worker) untrackMissing(chunk []string, found []*event.Event) {
	have := make(map[string]bool, len(found))
	for _, ev := range found {
		have[ev.ID] = true
	}
	for _, id := range chunk {
		if !have[id] {
			w.log.Warn("queued event not in the journal; dropped", "event", id)
			w.f.q.untrack(id)
		}
	}
}

// verdict is what admit decided for one event.
type verdict int

const (
	// admitRun: the event joins the batch.
	admitRun verdict = iota
	// admitDone: the event is already final in the journal; nothing to do.
	admitDone
	// admitIgnore: the event must not be applied (a duplicate delivery, a stale push).
	admitIgnore
	// admitRetry: what the target runs could not be read; the event is asked again later.
	admitRetry
	// admitVerify: the registry is asked first, beside the queue; the event comes back verified.
	admitVerify
	// admitFollow: the event awaits its pull request's merge, which the pull requests followed
	// now include; it finishes when the pull request does.
	admitFollow
	// admitElsewhere: the event belongs to another queue (a notification named the wrong one); it
	// moves there.
	admitElsewhere
)

// admission is admit's typed result: the verdict and, for ignore and retry, why.
type admission struct {
	verdict verdict
	reason  event.Reason
	why     string
	err     error
}

// admit decides whether an event runs in this batch: not a duplicate delivery, not stale by
// the journal's record of what its targets run, and vouched for by its registry when its hook
// asks.
func (w *worker) admit(ev *event.Event, current currentFunc) admission {
	switch {
	case ev.Status.Done():
		return admission{verdict: admitDone}
	case queueKey(ev) != w.key:
		return admission{verdict: admitElsewhere}
	case ev.Status == event.AwaitingMerge && w.f.rv.adopt(ev):
		// Read after its notification, or resumed twice: the same rule as resume's. One whose pull
		// request cannot be followed (pull requests turned off since) runs again, as a commit.
		return admission{verdict: admitFollow}
	}
	dup, err := w.f.journal.Duplicate(w.ctx, ev)
	if err == nil && dup != "" {
		// A registry re-delivering the same push: applying it again could only undo a later change.
		return admission{verdict: admitIgnore, reason: event.ReasonDuplicate, why: "duplicate delivery of event " + dup}
	}
	var a admission
	if err == nil && ev.Repo() != "" {
		a.reason, a.why, err = w.f.stale(w.ctx, ev, current)
	}
	switch {
	case err != nil:
		// What was applied before is unknown: guessing "nothing" could roll a target back or
		// apply a replay. The event waits and is asked again, as for an unreachable registry.
		return admission{verdict: admitRetry, err: err}
	case a.why != "":
		a.verdict = admitIgnore
		return a
	}
	if why := w.f.heldFor(w.ctx, ev); why != "" {
		return admission{verdict: admitIgnore, reason: event.ReasonHeld, why: why}
	}
	switch {
	case ev.Verify && !verified(ev):
		return admission{verdict: admitVerify}
	}
	return admission{verdict: admitRun}
}

// ignore settles an event that must not be applied (a duplicate, a replay, a push overtaken by a
// later one) with the reason, and hands it to the finisher.
func (w *worker) ignore(ev *event.Event, reason event.Reason, why string) {
	ev.SetStep(event.Step{Name: event.StepGit, Repo: ev.Repo(), Status: event.Ignored, Reason: reason, Detail: why, At: time.Now()})
	ev.Settle()
	w.log.Info("event ignored", "event", ev.ID, "hook", ev.Hook, "reason", reason, "detail", why)
	w.f.q.handOver(w.key, []*event.Event{ev})
}

// journalUnavailable leaves an event whose applied history could not be read queued, with the
// reason on its git step, and asks again after the git step's backoff.
func (w *worker) journalUnavailable(ev *event.Event, err error) {
	ev.SetStep(event.Step{Name: event.StepGit, Repo: ev.Repo(), Status: event.Queued, Reason: event.ReasonJournalUnavailable,
		Detail: "what the target runs could not be read from the journal; waiting for it", Error: err.Error(), At: time.Now()})
	ev.Attempts++
	w.f.q.goFlow(func() { w.requeue([]*event.Event{ev}, "journal unavailable") })
}

// waitsForJournal reports whether the event waits because the journal could not be read.
func waitsForJournal(ev *event.Event) bool {
	st, ok := ev.Step(event.StepGit)
	return ok && st.Status == event.Queued && st.Reason == event.ReasonJournalUnavailable
}

// requeue puts events back after a transient failure, after a backoff; events over their attempt
// budget fail instead, through the finisher.
func (w *worker) requeue(batch []*event.Event, why string) {
	var again, gaveUp []*event.Event
	for _, ev := range batch {
		// An event waiting for the journal is not failing: it waits as long as the journal is
		// down (what it would do to its targets is unknown until then).
		if ev.Attempts >= w.f.opts.MaxAttempts && !waitsForJournal(ev) {
			ev.Error = fmt.Sprintf("gave up after %d attempts", ev.Attempts)
			gaveUp = append(gaveUp, ev)
			continue
		}
		ev.Queue()
		again = append(again, ev)
	}
	w.f.q.handOver(w.key, gaveUp)
	w.f.save(w.ctx, w.log, again)
	if len(again) == 0 {
		return
	}
	delay := w.f.backoff().Delay(again[0].Attempts)
	w.log.Warn(why+", will retry", "events", eventIDs(again), "in", delay)
	if retry.Sleep(w.stop, delay) != nil {
		return // still queued in the journal: the next start resumes them
	}
	ids := make([]string, len(again))
	for i, ev := range again {
		ids[i] = ev.ID
	}
	w.f.q.putBack(w.key, ids)
}

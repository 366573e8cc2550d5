package listener

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
)

// PendingCounter counts the journal's events not yet done, per hook: what the journal size
// budget is checked against.
type PendingCounter interface {
	PendingByHook(ctx context.Context) (map[string]int, error)
}

// pendingRead is how often the journal is asked; between reads, accepted events are added to the
// count, so that it can only be over what the journal holds, never under (events finished
// meanwhile are taken off at the next read). With several replicas, another's events are seen
// within this time.
const pendingRead = time.Second

// pendingRetry is the Retry-After of a full journal: long enough for a worker to drain a batch.
const pendingRetry = 5 * time.Second

// pendingBudget is the journal size budget: events waiting per hook and in all.
type pendingBudget struct {
	counter      PendingCounter
	perHook, all int

	mu     sync.Mutex
	byHook map[string]int
	total  int
	readAt time.Time
	// err is the last count's failure: the next delivery counts again, and waits for it.
	err error
	// meanwhile is non-nil while a count runs beside the deliveries: what they reserved since it
	// began, added to its result.
	meanwhile map[string]int
}

// reserve counts n events of hook against the budget; it says why not ("" when they fit). A
// journal that cannot be counted is an error: nothing is written either way.
//
// Deliveries do not wait for the count each second (with 40,000 events waiting on PostgreSQL it
// took 47 ms, every delivery of the replica held behind it): a stale count is refreshed beside
// them, and what they reserve meanwhile is added to the fresh one, so that the count still can
// only be over what the journal holds. Only the first count, and the one after a failed count,
// are waited for.
func (b *pendingBudget) reserve(ctx context.Context, hook string, n int) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.byHook == nil || b.err != nil:
		counts, err := b.counter.PendingByHook(ctx)
		if err != nil {
			b.err = err
			return "", err
		}
		b.set(counts, nil)
	case time.Since(b.readAt) >= pendingRead && b.meanwhile == nil:
		b.meanwhile = map[string]int{}
		go b.refresh(context.WithoutCancel(ctx))
	}
	switch {
	case b.perHook > 0 && b.byHook[hook]+n > b.perHook:
		return fmt.Sprintf("%d events of this hook wait in the journal, %d more would pass limits.maxPendingPerHook (%d)", b.byHook[hook], n, b.perHook), nil
	case b.all > 0 && b.total+n > b.all:
		return fmt.Sprintf("%d events wait in the journal, %d more would pass limits.maxPending (%d)", b.total, n, b.all), nil
	}
	b.byHook[hook] += n
	b.total += n
	if b.meanwhile != nil {
		b.meanwhile[hook] += n
	}
	return "", nil
}

// refresh counts the journal beside the deliveries.
func (b *pendingBudget) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pendingRetry)
	counts, err := b.counter.PendingByHook(ctx)
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	meanwhile := b.meanwhile
	b.meanwhile = nil
	if err != nil {
		b.err = err
		return
	}
	b.set(counts, meanwhile)
}

// set takes a fresh count, plus what was reserved while it ran (which it may or may not hold:
// counted twice at worst, until the next count).
func (b *pendingBudget) set(counts, meanwhile map[string]int) {
	b.byHook, b.total, b.readAt, b.err = counts, 0, time.Now(), nil
	if b.byHook == nil {
		b.byHook = map[string]int{}
	}
	for hook, c := range meanwhile {
		b.byHook[hook] += c
	}
	for _, c := range b.byHook {
		b.total += c
	}
}

// budgets are what authenticated deliveries are charged to: the global rate budget (each hook's
// is on the hook), and the journal's size; their refusals are logged at refusalLog's pace.
type budgets struct {
	global *rate.Limiter
	// pending is the journal size budget (nil: the journal cannot count its events).
	pending *pendingBudget
	// refusals paces the log lines of budget refusals.
	refusals refusalLog
	log      *slog.Logger
}

// newBudgets builds the budgets of the limits; a journal that cannot count its events keeps no
// size budget, which is said once.
func newBudgets(l config.Limits, events Events, log *slog.Logger) *budgets {
	b := &budgets{global: rate.NewLimiter(rate.Limit(l.GlobalRate), max(l.GlobalBurst, 1)), log: log}
	if pc, ok := events.(PendingCounter); ok {
		b.pending = &pendingBudget{counter: pc, perHook: l.MaxPendingPerHook, all: l.MaxPending}
	} else if l.MaxPendingPerHook > 0 || l.MaxPending > 0 {
		log.Warn("the journal size budget is not kept: this journal cannot count its pending events")
	}
	return b
}

// admit charges n pushes of an authenticated delivery to the global and the hook's rate budgets,
// both or neither.
func (b *budgets) admit(hook *servedHook, n int) (response, bool) {
	wait, refused := take(n, b.global, hook.limiter)
	if refused < 0 {
		return response{}, true
	}
	budget, msg := "global", "too many requests"
	if refused == 1 {
		budget, msg = "hook", "too many requests for this hook"
	}
	b.logRefusal("webhook refused: rate limited", event.ReasonRateLimited, budget+"\x00"+hook.ID, "hook", hook.ID, "pushes", n, "budget", budget)
	return response{code: http.StatusTooManyRequests, body: map[string]any{"error": msg, "reason": string(event.ReasonRateLimited)},
		retryAfter: max(wait, time.Second)}, false
}

// admitPending refuses a request whose events the journal budget cannot take, before anything is
// written: 429 with Retry-After and reason "journal full".
func (b *budgets) admitPending(ctx context.Context, hook *servedHook, n int) (response, bool) {
	if b.pending == nil {
		return response{}, true
	}
	why, err := b.pending.reserve(ctx, hook.ID, n)
	if err != nil {
		b.log.Error("journal count failed", "hook", hook.ID, "err", err)
		return response{code: http.StatusServiceUnavailable, body: map[string]any{"error": "could not count the journal's events; retry later"}, retryAfter: pendingRetry}, false
	}
	if why != "" {
		b.logRefusal("webhook refused: journal full", event.ReasonJournalFull, hook.ID, "hook", hook.ID, "detail", why)
		return response{code: http.StatusTooManyRequests, body: map[string]any{"error": why, "reason": string(event.ReasonJournalFull)}, retryAfter: pendingRetry}, false
	}
	return response{}, true
}

// take reserves n tokens of each limiter, all or none; when they are not all there it returns how
// long to wait and the index of the limiter that refused (-1 when all took them). A request of
// more pushes than a burst holds is charged the whole burst, so that it can still pass once the
// budget is full.
func take(n int, limiters ...*rate.Limiter) (time.Duration, int) {
	now := time.Now()
	var taken []*rate.Reservation
	for i, l := range limiters {
		r := l.ReserveN(now, min(n, max(l.Burst(), 1)))
		if d := r.DelayFrom(now); !r.OK() || d > 0 {
			r.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			if !r.OK() {
				d = time.Second
			}
			return d, i
		}
		taken = append(taken, r)
	}
	return 0, -1
}

// refusalLog says a budget's refusals at most once a minute per budget and key, with how many
// went unsaid since: a flood past a budget must not flood the log too (the requests metric counts
// every answer).
type refusalLog struct {
	mu   sync.Mutex
	last map[string]time.Time
	hush map[string]int
}

// due reports whether a refusal under key is logged now, and how many were not since the last.
func (l *refusalLog) due(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.hush = map[string]time.Time{}, map[string]int{}
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < time.Minute {
		l.hush[key]++
		return false, 0
	}
	if len(l.last) > 10_000 {
		clear(l.last) // keys are hooks and repositories: only a reload's churn gets here
		clear(l.hush)
	}
	n := l.hush[key]
	l.last[key], l.hush[key] = now, 0
	return true, n
}

// logRefusal logs a refused request with its reason, within refusalLog's pace.
func (b *budgets) logRefusal(msg string, reason event.Reason, key string, args ...any) {
	if ok, n := b.refusals.due(string(reason)+"\x00"+key, time.Now()); ok {
		b.log.Info(msg, append(append([]any{"reason", reason}, args...), "unlogged_since_last", n)...)
	}
}

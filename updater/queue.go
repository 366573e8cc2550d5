package updater

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/imagehook/imagehook/event"
)

// queues schedules the flow: one queue per repository (or direct-only cluster), each with its
// worker and finisher; the events queued or in flight (tracked), so that an event found both by a
// submission and by a scan of the journal runs once; and the ?wait= callers of each event.
type queues struct {
	f *flow

	mu      sync.Mutex
	byKey   map[string]*queue
	waiters map[string][]chan struct{}
	tracked map[string]bool
	// ctx is Run's: nil before Run, when queues are filled but no worker starts.
	ctx context.Context
	wg  sync.WaitGroup
}

// queue is one repository's (or cluster's) work: the events waiting for its worker, and the
// batches waiting for its finisher.
type queue struct {
	ids    []string
	signal chan struct{}
	// finishing feeds the queue's finisher: direct apply (which may wait minutes for a rollout) and
	// the hand-over to the reports run there, in order, while the worker goes on with the next git
	// batch. It is a list, not a bounded channel, so that a slow cluster never makes the git worker
	// wait (the events are in the journal either way).
	finishing [][]*event.Event
	finSignal chan struct{}
}

func newQueues(f *flow) *queues {
	return &queues{f: f, byKey: map[string]*queue{}, waiters: map[string][]chan struct{}{}, tracked: map[string]bool{}}
}

// queueKey names the queue of an event: its repository, or for direct-only events their cluster,
// so that one slow cluster does not hold back another.
func queueKey(ev *event.Event) string {
	if r := ev.Repo(); r != "" {
		return r
	}
	if len(ev.Targets) > 0 {
		return QueueKey("", ev.Targets[0].Cluster)
	}
	return clusterQueue
}

// QueueKey names the queue of the events of a repository ("" and cluster: the direct-only
// queue of that cluster), for replicas to share the queues out.
func QueueKey(repo, cluster string) string {
	if repo != "" {
		return repo
	}
	return clusterQueue + cluster
}

// clusterQueue prefixes the keys of direct-only queues; repository names cannot contain it.
const clusterQueue = "\x00cluster:"

func logKey(key string) string { return strings.TrimPrefix(key, clusterQueue) }

// start begins serving: the queues filled before Run get their worker and finisher.
func (qs *queues) start(ctx context.Context) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	qs.ctx = ctx
	for key, q := range qs.byKey {
		qs.startLocked(key, q)
	}
}

// add queues the event, starting its queue on first use. It reports false when another replica
// works that queue.
func (qs *queues) add(ev *event.Event) bool { return qs.addID(queueKey(ev), ev.ID) }

// addID queues event id in the queue of key: the worker reads the event with its batch.
func (qs *queues) addID(key, id string) bool {
	if !qs.f.owns(key) {
		return false
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.tracked[id] {
		return true
	}
	qs.tracked[id] = true
	q := qs.getLocked(key)
	q.ids = append(q.ids, id)
	signal(q.signal)
	return true
}

// putBack puts events the queue already tracks at its front: after a backoff, or verified.
func (qs *queues) putBack(key string, ids []string) {
	qs.mu.Lock()
	q := qs.getLocked(key)
	q.ids = append(append([]string(nil), ids...), q.ids...)
	qs.mu.Unlock()
	signal(q.signal)
}

// MaxBatch is the most events one batch of a queue takes: a burst up to it is one commit, and a
// backlog of any length drains in batches of it, within bounded memory.
const MaxBatch = 1000

// take takes the queue's waiting events for a batch, at most MaxBatch of them.
func (qs *queues) take(q *queue) []string {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	ids := q.ids
	q.ids = nil
	if len(ids) > MaxBatch {
		// What one batch loads stays the same however long the queue grew.
		ids, q.ids = ids[:MaxBatch:MaxBatch], slices.Clone(ids[MaxBatch:])
	}
	return ids
}

// handOver queues events for the finisher of key: the one route to the end of the flow. It never
// blocks.
func (qs *queues) handOver(key string, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	qs.mu.Lock()
	q := qs.getLocked(key)
	q.finishing = append(q.finishing, evs)
	qs.mu.Unlock()
	signal(q.finSignal)
}

// nextFinish returns the finisher's next batch, or nil.
func (qs *queues) nextFinish(q *queue) []*event.Event {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if len(q.finishing) == 0 {
		return nil
	}
	batch := q.finishing[0]
	q.finishing = q.finishing[1:]
	return batch
}

// getLocked returns the queue of key, starting its worker and finisher on first use once Run has
// begun. It must be called with qs.mu held.
func (qs *queues) getLocked(key string) *queue {
	q, ok := qs.byKey[key]
	if !ok {
		q = &queue{signal: make(chan struct{}, 1), finSignal: make(chan struct{}, 1)}
		qs.byKey[key] = q
		if qs.ctx != nil {
			qs.startLocked(key, q)
		}
	}
	return q
}

// startLocked must be called with qs.mu held.
func (qs *queues) startLocked(key string, q *queue) {
	log := qs.f.log.With("repo", logKey(key))
	w := &worker{f: qs.f, key: key, log: log, q: q, stop: qs.ctx, ctx: context.WithoutCancel(qs.ctx)}
	fin := &finisher{f: qs.f, key: key, log: log, q: q}
	qs.wg.Add(2)
	go func() {
		defer qs.wg.Done()
		w.run()
	}()
	go func() {
		defer qs.wg.Done()
		fin.run(qs.ctx)
	}()
}

// goFlow runs fn beside the queues; Run waits for it at shutdown.
func (qs *queues) goFlow(fn func()) {
	qs.wg.Add(1)
	go func() {
		defer qs.wg.Done()
		fn()
	}()
}

// runContext is the context of Run: it ends at shutdown.
func (qs *queues) runContext() context.Context {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.ctx == nil {
		return context.Background()
	}
	return qs.ctx
}

// track marks an event in flight outside the queues (awaiting its pull request's merge).
func (qs *queues) track(id string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	qs.tracked[id] = true
}

// untracked returns the ids not queued or in flight here.
func (qs *queues) untracked(ids []string) []string {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return slices.DeleteFunc(ids, func(id string) bool { return qs.tracked[id] })
}

func (qs *queues) untrack(ids ...string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	for _, id := range ids {
		delete(qs.tracked, id)
	}
}

// wait blocks until the event is done or ctx ends, and returns its latest state (read by get).
func (qs *queues) wait(ctx context.Context, id string, get func(context.Context, string) (*event.Event, error)) (*event.Event, error) {
	ch := make(chan struct{})
	qs.mu.Lock()
	qs.waiters[id] = append(qs.waiters[id], ch)
	qs.mu.Unlock()
	defer qs.unwait(id, ch)
	ev, err := get(ctx, id)
	// A change awaiting its pull request's merge is answered as it stands: merges take hours.
	if err != nil || ev.Status.Done() || ev.Status == event.AwaitingMerge {
		return ev, err
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return get(context.WithoutCancel(ctx), id)
}

func (qs *queues) unwait(id string, ch chan struct{}) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	list := qs.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(qs.waiters, id)
	} else {
		qs.waiters[id] = list
	}
}

// wake answers the event's ?wait= callers.
func (qs *queues) wake(id string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	for _, ch := range qs.waiters[id] {
		close(ch)
	}
	delete(qs.waiters, id)
}

// depth is the number of events waiting in all queues.
func (qs *queues) depth() int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	n := 0
	for _, q := range qs.byKey {
		n += len(q.ids)
	}
	return n
}

// signal wakes a queue's goroutine without ever blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

package listener

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gatedCounter answers counts from its table; while gate is set, a count waits for it.
type gatedCounter struct {
	mu     sync.Mutex
	counts map[string]int
	err    error
	gate   chan struct{}
	calls  int
}

func (c *gatedCounter) PendingByHook(context.Context) (map[string]int, error) {
	c.mu.Lock()
	c.calls++
	gate, err := c.gate, c.err
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return out, err
}

// TestBudgetCountsBesideDeliveries: a stale count is refreshed beside the deliveries, which do
// not wait for it, and what they reserve meanwhile is added to its result, so that the budget
// still refuses what would pass the limit; a failed count makes the next delivery count again and
// fail with it.
func TestBudgetCountsBesideDeliveries(t *testing.T) {
	c := &gatedCounter{counts: map[string]int{"h": 2}}
	b := &pendingBudget{counter: c, perHook: 5}
	ctx := context.Background()
	if why, err := b.reserve(ctx, "h", 1); why != "" || err != nil {
		t.Fatalf("first delivery: %q %v", why, err)
	}
	// The count goes stale and the next one hangs: deliveries still pass, against the old count.
	gate := make(chan struct{})
	c.mu.Lock()
	c.gate = gate
	c.mu.Unlock()
	b.mu.Lock()
	b.readAt = time.Now().Add(-2 * pendingRead)
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			if why, err := b.reserve(ctx, "h", 1); why != "" || err != nil {
				t.Errorf("delivery during the count: %q %v", why, err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deliveries waited for the count")
	}
	// The journal committed none of the three meanwhile: the fresh count (2) plus the two reserved
	// during it is 4, so one more fits and a second does not.
	c.mu.Lock()
	c.gate = nil
	c.mu.Unlock()
	close(gate)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		reading := b.meanwhile != nil
		b.mu.Unlock()
		if !reading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the count did not finish")
		}
	}
	if why, _ := b.reserve(ctx, "h", 1); why != "" {
		t.Errorf("the fifth event was refused: %s", why)
	}
	if why, _ := b.reserve(ctx, "h", 1); why == "" {
		t.Error("the sixth event passed maxPendingPerHook 5")
	}
	// A failed count: the next delivery counts again, waits for it and fails with it.
	c.mu.Lock()
	c.err = errors.New("journal down")
	c.mu.Unlock()
	b.mu.Lock()
	b.readAt = time.Now().Add(-2 * pendingRead)
	b.mu.Unlock()
	_, _ = b.reserve(ctx, "h", 0) // starts the count beside it
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		failed := b.err != nil
		b.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed count was not kept")
		}
	}
	if _, err := b.reserve(ctx, "h", 1); err == nil {
		t.Error("a delivery passed while the journal could not be counted")
	}
}

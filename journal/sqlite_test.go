package journal

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
)

func open(t *testing.T) *SQLite {
	t.Helper()
	j, err := OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestInsertOrderAndDeliveries(t *testing.T) {
	ctx := context.Background()
	j := open(t)
	now := time.Now()
	a := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: "X-GitHub-Delivery:1", ReceivedAt: now, Status: event.Queued}
	b := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: "X-GitHub-Delivery:2", ReceivedAt: now, Status: event.Queued}
	for _, ev := range []*event.Event{a, b} {
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if a.Seq == 0 || b.Seq <= a.Seq {
		t.Errorf("seq a=%d b=%d, want increasing", a.Seq, b.Seq)
	}
	replay := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: a.Delivery, ReceivedAt: now, Status: event.Queued}
	if err := j.Insert(ctx, replay); !errors.Is(err, event.ErrDuplicateDelivery) {
		t.Errorf("replayed delivery: %v, want ErrDuplicateDelivery", err)
	}
	if _, err := j.Get(ctx, replay.ID); !errors.Is(err, event.ErrNotFound) {
		t.Errorf("a duplicate was recorded: %v", err)
	}
	other := &event.Event{ID: event.NewID(now), Hook: "other-hook", Delivery: a.Delivery, ReceivedAt: now, Status: event.Queued}
	if err := j.Insert(ctx, other); err != nil {
		t.Errorf("the same delivery id on another hook: %v", err)
	}
	got, err := j.Get(ctx, b.ID)
	if err != nil || got.Seq != b.Seq {
		t.Errorf("Get: seq %v, %v", got, err)
	}
	// Delivery ids are forgotten with the events, after the retention.
	for _, ev := range []*event.Event{a, b, other} {
		ev.Status = event.Succeeded
	}
	if err := j.UpdateMany(ctx, []*event.Event{a, b, other}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Prune(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := j.Insert(ctx, replay); err != nil {
		t.Errorf("a delivery id past the retention: %v", err)
	}
}

func TestAppliedKeepsTheLatest(t *testing.T) {
	ctx := context.Background()
	j := open(t)
	t1, t2 := time.Unix(1000, 0).UTC(), time.Unix(2000, 0).UTC()
	if err := j.SetApplied(ctx, "k", Applied{Seq: 5, PushedAt: t2, Event: "e5"}); err != nil {
		t.Fatal(err)
	}
	if err := j.SetApplied(ctx, "k", Applied{Seq: 3, PushedAt: t1, Event: "e3"}); err != nil {
		t.Fatal(err)
	}
	if a, err := j.LastApplied(ctx, "k"); err != nil || a.Event != "e5" || !a.PushedAt.Equal(t2) {
		t.Errorf("an older event replaced a newer one: %+v %v", a, err)
	}
	if a, _ := j.LastApplied(ctx, "none"); a.Event != "" {
		t.Errorf("unknown target: %+v", a)
	}
}

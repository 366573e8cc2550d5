package journal

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// backends are the journal implementations: every test runs on each (PostgreSQL is skipped, with
// the reason, where it is not installed).
var backends = []struct {
	name string
	open func(t *testing.T) Journal
}{
	{"sqlite", func(t *testing.T) Journal {
		j, err := OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}},
	{"postgres", func(t *testing.T) Journal {
		pg := pgtest.Start(t)
		j, err := OpenPostgres(context.Background(), pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}},
}

func each(t *testing.T, test func(t *testing.T, j Journal)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open(t)) })
	}
}

func TestInsertOrderAndDeliveries(t *testing.T) { each(t, testInsertOrderAndDeliveries) }

func TestAppliedKeepsTheLatest(t *testing.T) { each(t, testAppliedKeepsTheLatest) }

func testInsertOrderAndDeliveries(t *testing.T, j Journal) {
	ctx := context.Background()
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

func TestCancelledAreKept(t *testing.T) { each(t, testCancelledAreKept) }

// testCancelledAreKept: the cancelled events (pull requests closed unmerged) are found, in journal
// order, until the retention prunes them; no other status is.
func testCancelledAreKept(t *testing.T, j Journal) {
	ctx := context.Background()
	now := time.Now()
	var ids []string
	for _, st := range []event.Status{event.Cancelled, event.Succeeded, event.AwaitingMerge, event.Cancelled} {
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Queued}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ev.Status = st
		if err := j.UpdateMany(ctx, []*event.Event{ev}); err != nil {
			t.Fatal(err)
		}
		if st == event.Cancelled {
			ids = append(ids, ev.ID)
		}
	}
	got, err := j.Cancelled(ctx)
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] || got[0].Seq == 0 {
		t.Fatalf("cancelled: %v %v, want %v", got, err, ids)
	}
	if _, err := j.Prune(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Cancelled(ctx); err != nil || len(got) != 0 {
		t.Errorf("after the retention: %v %v", got, err)
	}
}

func testAppliedKeepsTheLatest(t *testing.T, j Journal) {
	ctx := context.Background()
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

// TestPostgresMigrations: replicas starting together migrate once (an advisory lock), a second
// start finds the schema current, and a database newer than the binary is refused.
func TestPostgresMigrations(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			j, err := OpenPostgres(ctx, pg.DSN)
			if err == nil {
				j.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent start: %v", err)
		}
	}
	j, err := OpenPostgres(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := j.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("%d migrations recorded, want %d (%v)", n, len(migrations), err)
	}
	if _, err := j.pool.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := OpenPostgres(ctx, pg.DSN); err == nil || !strings.Contains(err.Error(), "newer than this imagehook knows") {
		t.Errorf("a newer schema: %v", err)
	}
	if _, err := OpenPostgres(ctx, "postgres://u:s3cret@[bad"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad DSN: %v", err)
	}
}

// TestHostileValuesAreStored: a payload's NUL or odd bytes must never make the journal refuse an
// event (that would be a 503 for ever for that registry).
func TestHostileValuesAreStored(t *testing.T) {
	each(t, func(t *testing.T, j Journal) {
		ctx := context.Background()
		now := time.Now()
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Queued,
			Push:    event.Push{Image: "r/x:1", Digest: "sha256:" + strings.Repeat("a", 64), Pusher: "a\x00b\u2028\xff"},
			Targets: []event.Target{{Repo: "apps", Workload: "deployment/x\x00y"}}}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		got, err := j.Get(ctx, ev.ID)
		if err != nil || !strings.Contains(got.Push.Pusher, "a\x00b") {
			t.Fatalf("%+v %v", got, err)
		}
		ev.Status = event.Succeeded
		if err := j.UpdateMany(ctx, []*event.Event{ev}); err != nil {
			t.Fatal(err)
		}
		again := *ev
		again.ID = event.NewID(now)
		if id, err := j.Duplicate(ctx, &again); err != nil || id != ev.ID {
			t.Errorf("duplicate: %q %v", id, err)
		}
	})
}

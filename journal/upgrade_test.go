package journal

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// TestMigration5KeepsData: a PostgreSQL journal at schema version 4 that already holds waiting,
// cancelled and finished events (the upgrade path) is migrated to the waiting indexes and reads
// the same events through them.
func TestMigration5KeepsData(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t).DSN
	j, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var waiting, cancelled []string
	for i, st := range []event.Status{event.Queued, event.Succeeded, event.Cancelled, event.Failed, event.Queued} {
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: st}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !st.Done() {
			waiting = append(waiting, ev.ID)
		}
		if st == event.Cancelled {
			cancelled = append(cancelled, ev.ID)
		}
	}
	// Back to version 4, as an earlier release left it.
	for _, q := range []string{`DROP INDEX events_waiting`, `DROP INDEX events_cancelled`, `CREATE INDEX events_status ON events(status)`,
		`DELETE FROM schema_migrations WHERE version = 5`} {
		if _, err := j.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	j.Close()
	if j, err = OpenPostgres(ctx, dsn); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer j.Close()
	ids := func(evs []*event.Event, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	if got := ids(j.Pending(ctx)); !slices.Equal(got, waiting) {
		t.Errorf("pending after the upgrade: %v, want %v", got, waiting)
	}
	if got := ids(j.Cancelled(ctx)); !slices.Equal(got, cancelled) {
		t.Errorf("cancelled after the upgrade: %v, want %v", got, cancelled)
	}
	if n, err := j.PendingByHook(ctx); err != nil || n["h"] != len(waiting) {
		t.Errorf("PendingByHook after the upgrade: %v, %v; want h: %d", n, err, len(waiting))
	}
	var v int
	if err := j.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version %d (%v), want %d", v, err, len(migrations))
	}
}

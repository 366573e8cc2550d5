package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// BenchmarkPendingByHook measures the journal size budget's count (each replica asks once a
// second, holding its budget's lock) and the start's Pending read on a journal that keeps a
// retention's worth of finished events (100,000) beside the few still waiting (10): the cost must
// follow what waits, not what is kept.
func BenchmarkPendingByHook(b *testing.B) {
	open := map[string]func(b *testing.B) interface {
		Journal
		together
	}{
		"sqlite": func(b *testing.B) interface {
			Journal
			together
		} {
			j, err := OpenSQLite(filepath.Join(b.TempDir(), "journal.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { j.Close() })
			return j
		},
		"postgres": func(b *testing.B) interface {
			Journal
			together
		} {
			j, err := OpenPostgres(context.Background(), pgtest.Start(b).DSN)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { j.Close() })
			return j
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			j := open[name](b)
			fillKept(b, j, 100_000, 10)
			ctx := context.Background()
			b.Run("PendingByHook", func(b *testing.B) {
				for b.Loop() {
					if counts, err := j.PendingByHook(ctx); err != nil || counts["h"] != 10 {
						b.Fatalf("counts %v, %v", counts, err)
					}
				}
			})
			b.Run("Pending", func(b *testing.B) {
				for b.Loop() {
					if evs, err := j.Pending(ctx); err != nil || len(evs) != 10 {
						b.Fatalf("%d pending, %v", len(evs), err)
					}
				}
			})
		})
	}
}

// fillKept journals done finished events and then waiting ones, in batches of a thousand.
func fillKept(b *testing.B, j together, done, waiting int) {
	b.Helper()
	now := time.Now()
	for start := 0; start < done+waiting; start += 1000 {
		var evs []*event.Event
		for i := start; i < min(start+1000, done+waiting); i++ {
			st := event.Succeeded
			if i >= done {
				st = event.Queued
			}
			evs = append(evs, &event.Event{ID: event.NewID(now), Hook: "h", Delivery: fmt.Sprint("d", i), ReceivedAt: now, Status: st,
				Targets: []event.Target{{Repo: "apps", Path: "apps/website", Workload: "deployment/website"}}})
		}
		for _, err := range j.insertTogether(evs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestWaitingIndexes: both backends index the waiting and the cancelled events alone, and no
// longer every status (a journal opened by an earlier version loses its events_status index).
func TestWaitingIndexes(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		// As an earlier version left it.
		if _, err := j.db.Exec(`CREATE INDEX events_status ON events(status)`); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if j, err = OpenSQLite(path); err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		checkIndexes(t, func() ([]string, error) {
			rows, err := j.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name LIKE 'events_%'`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanIDs(rows)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		j, err := OpenPostgres(ctx, pgtest.Start(t).DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		checkIndexes(t, func() ([]string, error) {
			rows, err := j.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'events' AND indexname LIKE 'events\_%' AND indexname NOT LIKE '%pkey' AND indexname NOT LIKE '%_key'`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanIDs(rows)
		})
	})
}

func checkIndexes(t *testing.T, list func() ([]string, error)) {
	t.Helper()
	names, err := list()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"events_cancelled", "events_dedup", "events_waiting"}; !slices.Equal(names, want) {
		t.Errorf("indexes of events: %v, want %v", names, want)
	}
}

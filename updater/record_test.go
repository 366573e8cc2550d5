package updater

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
)

// countingJournal is a real journal that counts what targets' records are read and written.
type countingJournal struct {
	journal.Journal
	mu     sync.Mutex
	reads  map[string]int
	writes map[string][]journal.Applied
}

func (j *countingJournal) Current(ctx context.Context, key string) (journal.Applied, error) {
	j.mu.Lock()
	j.reads[key]++
	j.mu.Unlock()
	return j.Journal.Current(ctx, key)
}

func (j *countingJournal) SetCurrent(ctx context.Context, key string, a journal.Applied) error {
	j.mu.Lock()
	j.writes[key] = append(j.writes[key], a)
	j.mu.Unlock()
	return j.Journal.SetCurrent(ctx, key, a)
}

func newCountingJournal(t *testing.T) *countingJournal {
	t.Helper()
	sq, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	return &countingJournal{Journal: sq, reads: map[string]int{}, writes: map[string][]journal.Applied{}}
}

// TestRecordAppliedKeepsTheNewest: after a batch, each target's record names its newest event
// whose git step succeeded and the latest push time among them; a failed step is not recorded.
func TestRecordAppliedKeepsTheNewest(t *testing.T) {
	j := newCountingJournal(t)
	f := &flow{journal: j}
	a := event.Target{Repo: "apps", Path: "a", Workload: "deployment/a", Container: "a"}
	b := event.Target{Repo: "apps", Path: "b", Workload: "deployment/b", Container: "b"}
	t1, t2 := time.UnixMilli(1_000_000).UTC(), time.UnixMilli(2_000_000).UTC()
	ev := func(id string, seq int64, pushed time.Time, git event.Status, targets ...event.Target) *event.Event {
		return &event.Event{ID: id, Seq: seq, Push: event.Push{PushedAt: pushed}, Targets: targets,
			Steps: []event.Step{{Name: event.StepGit, Status: git}}}
	}
	batch := []*event.Event{
		ev("e1", 1, t2, event.Succeeded, a, b),
		ev("e2", 2, t1, event.Succeeded, a),
		ev("e3", 3, t2.Add(time.Hour), event.Failed, a),
	}
	f.recordApplied(context.Background(), slog.New(slog.DiscardHandler), batch, func(event.Target) bool { return true })
	for key, w := range map[string]journal.Applied{
		a.Key(): {Seq: 2, Event: "e2", PushedAt: t2},
		b.Key(): {Seq: 1, Event: "e1", PushedAt: t2},
	} {
		if got, err := j.Journal.Current(context.Background(), key); err != nil || got != w {
			t.Errorf("journal for %s: got %+v (%v), want %+v", key, got, err, w)
		}
	}
	for _, w := range j.writes[a.Key()] {
		if w.Event == "e3" {
			t.Errorf("the failed step's event was recorded: %+v", w)
		}
	}
}

// TestBatchCurrentsReadsOncePerTarget: a batch's admission reads each target's record once,
// however many of its events name it; a failed read is not remembered.
func TestBatchCurrentsReadsOncePerTarget(t *testing.T) {
	j := newCountingJournal(t)
	ctx := context.Background()
	if err := j.Journal.SetCurrent(ctx, "k", journal.Applied{Seq: 7, Event: "e7"}); err != nil {
		t.Fatal(err)
	}
	current := batchCurrents(j.Current)
	for range 100 {
		if a, err := current(ctx, "k"); err != nil || a.Seq != 7 {
			t.Fatalf("current: %+v, %v", a, err)
		}
		if _, err := current(ctx, "other"); err != nil {
			t.Fatal(err)
		}
	}
	if j.reads["k"] != 1 || j.reads["other"] != 1 {
		t.Errorf("reads: %v, want one per key", j.reads)
	}
	fails := 0
	flaky := batchCurrents(func(context.Context, string) (journal.Applied, error) { fails++; return journal.Applied{}, errDown })
	_, _ = flaky(ctx, "k")
	_, _ = flaky(ctx, "k")
	if fails != 2 {
		t.Errorf("a failed read was remembered: %d reads, want 2", fails)
	}
}

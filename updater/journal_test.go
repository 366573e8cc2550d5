package updater

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
)

// flakyJournal is a real journal whose applied records can be made to fail, as PostgreSQL's did
// for every key with a NUL, or as any database does while it is down.
type flakyJournal struct {
	journal.Journal
	down     atomic.Bool  // Current fails while set
	setFails atomic.Int32 // SetCurrent fails this many more times
	reads    atomic.Int32 // failed Current calls
}

var errDown = errors.New("journal down")

func (j *flakyJournal) Current(ctx context.Context, key string) (journal.Applied, error) {
	if j.down.Load() {
		j.reads.Add(1)
		return journal.Applied{}, errDown
	}
	return j.Journal.Current(ctx, key)
}

func (j *flakyJournal) SetCurrent(ctx context.Context, key string, a journal.Applied) error {
	if j.setFails.Add(-1) >= 0 {
		return errDown
	}
	return j.Journal.SetCurrent(ctx, key, a)
}

// TestJournalReadFailureIsNeverNothingApplied: while what a target runs cannot be read, an event
// waits (reason journal unavailable), past its attempt budget, and nothing is written; once the
// journal answers it is applied, and a SetCurrent that failed is retried until it lands.
func TestJournalReadFailureIsNeverNothingApplied(t *testing.T) {
	sq, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	j := &flakyJournal{Journal: sq}
	repo := &memRepo{files: fstest.MapFS{"a.yaml": deployment("a", "acme/a:1")}}
	u := New(j, map[string]Repository{"apps": {Git: repo}}, nil, nil, slog.New(slog.DiscardHandler),
		Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)

	j.down.Store(true)
	if err := u.Submit(ctx, ev("1", "a", "acme/a:2", "")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); j.reads.Load() < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads of the journal were tried", j.reads.Load())
		}
	}
	got, err := sq.Get(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := got.Step(event.StepGit)
	if got.Status.Done() || st.Reason != event.ReasonJournalUnavailable || !strings.Contains(st.Error, "journal down") {
		t.Fatalf("while the journal is down the event is %s, git step %+v; want it waiting, reason %q", got.Status, st, event.ReasonJournalUnavailable)
	}
	if len(repo.commits) != 0 {
		t.Fatalf("%d commits while what the target runs was unknown", len(repo.commits))
	}

	j.setFails.Store(2)
	j.down.Store(false)
	if e := waitDone(t, u, "1")["1"]; e.Status != event.Succeeded || len(repo.commits) != 1 {
		t.Fatalf("after the journal came back: %s, %d commits", e.Status, len(repo.commits))
	}
	key := ev("1", "a", "", "").Targets[0].Key()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if a, err := sq.Current(ctx, key); err == nil && a.Event == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the applied record that failed twice was never retried")
		}
	}
}

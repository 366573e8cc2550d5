package updater

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
)

// memRepo is the git seam for the flow's logic: an in-memory tree that records commits. The real
// git path is tested end to end in package service.
type memRepo struct {
	mu      sync.Mutex
	files   fstest.MapFS
	commits []string
	fail    []error // returned by the next Apply calls, one each
	landed  map[string]string
}

func (m *memRepo) CommitAndPush(_ context.Context, edit gitops.EditFunc) (gitops.Commit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		return gitops.Commit{Attempts: 1}, err
	}
	files, msg, err := edit(m.files)
	if err != nil || len(files) == 0 {
		return gitops.Commit{Hash: "tip", Attempts: 1}, err
	}
	for name, data := range files {
		m.files[name] = &fstest.MapFile{Data: data}
	}
	m.commits = append(m.commits, msg)
	return gitops.Commit{Hash: "c" + string(rune('0'+len(m.commits))), Changed: true, Attempts: 1}, nil
}

// Log presents each landed event as a commit of imagehook's carrying its trailer block.
func (m *memRepo) Log(_ context.Context, _ int, fn gitops.LogFunc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, c := range m.landed {
		if !fn(gitops.LogCommit{Hash: c, Committer: m.Identity(), Message: "imagehook: earlier\n\nImagehook-Event: " + id + "\n"}) {
			return nil
		}
	}
	return nil
}

func (m *memRepo) Identity() gitops.Signature {
	return gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}
}

func deployment(name, image string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name +
		"\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: " + image + "\n")}
}

func newUpdater(t *testing.T, repo *memRepo) (*Updater, func()) {
	t.Helper()
	j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	u := New(j, map[string]Repository{"apps": {Git: repo}}, nil, nil, slog.New(slog.DiscardHandler),
		Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3})
	return u, func() { j.Close() }
}

func ev(id, workload, image, digest string) *event.Event {
	return &event.Event{ID: id, Hook: "h", Push: event.Push{Image: image, Digest: digest, Source: "test"},
		Targets: []event.Target{{Repo: "apps", Path: ".", Workload: "deployment/" + workload, Container: "app"}}, ReceivedAt: time.Now()}
}

func waitDone(t *testing.T, u *Updater, ids ...string) map[string]*event.Event {
	t.Helper()
	out := map[string]*event.Event{}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e, err := u.Wait(ctx, id)
		cancel()
		if err != nil || !e.Status.Done() {
			t.Fatalf("event %s: %v %+v", id, err, e)
		}
		out[id] = e
	}
	return out
}

// TestCoalescing submits a burst before the worker starts: one commit, the latest push per target
// wins, the earlier one is superseded, every event shares the commit.
func TestCoalescing(t *testing.T) {
	repo := &memRepo{files: fstest.MapFS{"a.yaml": deployment("a", "acme/a:1"), "b.yaml": deployment("b", "acme/b:1")}}
	u, done := newUpdater(t, repo)
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	for _, e := range []*event.Event{ev("1", "a", "acme/a:2", ""), ev("2", "b", "acme/b:2", ""), ev("3", "a", "acme/a:3", "")} {
		if err := u.Submit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	go u.Run(ctx)
	defer cancel()
	got := waitDone(t, u, "1", "2", "3")
	if len(repo.commits) != 1 {
		t.Fatalf("%d commits, want 1", len(repo.commits))
	}
	if data := string(repo.files["a.yaml"].Data); !strings.Contains(data, "acme/a:3") {
		t.Errorf("a.yaml = %s", data)
	}
	for id, e := range got {
		st, _ := e.Step("git")
		if e.Status != event.Succeeded || st.Commit != "c1" {
			t.Errorf("event %s: %s %+v", id, e.Status, st)
		}
	}
	if st, _ := got["1"].Step("git"); !strings.Contains(st.Detail, "superseded") {
		t.Errorf("event 1 detail = %q", st.Detail)
	}
	for _, trailer := range []string{"Imagehook-Event: 1", "Imagehook-Event: 2", "Imagehook-Event: 3", "Imagehook-Change: deployment/b app acme/b:1 -> acme/b:2"} {
		if !strings.Contains(repo.commits[0], trailer) {
			t.Errorf("commit message lacks %q:\n%s", trailer, repo.commits[0])
		}
	}
}

func TestOutcomes(t *testing.T) {
	const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	tests := []struct {
		name   string
		fail   []error
		events []*event.Event
		status []event.Status
		detail string
	}{
		{"transient failure then success", []error{errors.New("connection refused")}, []*event.Event{ev("1", "a", "acme/a:2", "")},
			[]event.Status{event.Succeeded}, ""},
		{"gives up after the attempts", []error{errors.New("down"), errors.New("down"), errors.New("down")}, []*event.Event{ev("1", "a", "acme/a:2", "")},
			[]event.Status{event.Failed}, "gave up"},
		{"rejected is final", []error{gitops.ErrRejected}, []*event.Event{ev("1", "a", "acme/a:2", "")},
			[]event.Status{event.Failed}, ""},
		{"workload missing fails alone", nil, []*event.Event{ev("1", "nope", "acme/a:2", ""), ev("2", "a", "acme/a:2", "")},
			[]event.Status{event.Failed, event.Succeeded}, ""},
		{"other repository is ignored", nil, []*event.Event{ev("1", "a", "acme/other:2", "")},
			[]event.Status{event.Ignored}, "another repository"},
		{"first delivery with a digest", nil, []*event.Event{ev("1", "a", "acme/a:2", digest)},
			[]event.Status{event.Succeeded}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := &memRepo{files: fstest.MapFS{"a.yaml": deployment("a", "acme/a:1")}, fail: tt.fail}
			u, done := newUpdater(t, repo)
			defer done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go u.Run(ctx)
			var ids []string
			for _, e := range tt.events {
				if err := u.Submit(ctx, e); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			got := waitDone(t, u, ids...)
			for i, id := range ids {
				if got[id].Status != tt.status[i] {
					t.Errorf("event %s: %s, want %s (%+v)", id, got[id].Status, tt.status[i], got[id])
				}
			}
			if tt.detail != "" {
				e := got[ids[0]]
				st, _ := e.Step("git")
				if !strings.Contains(e.Error+st.Detail+st.Error, tt.detail) {
					t.Errorf("want %q in %+v", tt.detail, e)
				}
			}
		})
	}
	t.Run("redelivered digest", func(t *testing.T) {
		repo := &memRepo{files: fstest.MapFS{"a.yaml": deployment("a", "acme/a:1")}}
		u, done := newUpdater(t, repo)
		defer done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go u.Run(ctx)
		_ = u.Submit(ctx, ev("1", "a", "acme/a:2", digest))
		waitDone(t, u, "1")
		_ = u.Submit(ctx, ev("2", "a", "acme/a:2", digest))
		second := waitDone(t, u, "2")["2"]
		if st, _ := second.Step("git"); second.Status != event.Ignored || !strings.Contains(st.Detail, "duplicate delivery of event 1") || len(repo.commits) != 1 {
			t.Errorf("redelivery: %+v, %d commits", second, len(repo.commits))
		}
	})
}

func TestJournalPrune(t *testing.T) {
	j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	old := ev("old", "a", "acme/a:1", "")
	old.ReceivedAt, old.Status = time.Now().Add(-48*time.Hour), event.Succeeded
	queued := ev("queued", "a", "acme/a:1", "")
	queued.ReceivedAt, queued.Status = time.Now().Add(-48*time.Hour), event.Queued
	for _, e := range []*event.Event{old, queued} {
		if err := j.Insert(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := j.Prune(ctx, time.Now().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if _, err := j.Get(ctx, "old"); !errors.Is(err, event.ErrNotFound) {
		t.Errorf("old event still there: %v", err)
	}
	if _, err := j.Get(ctx, "queued"); err != nil {
		t.Errorf("a queued event was pruned: %v", err)
	}
}

// TestTrailersOnlyForCarriedEvents: an event whose image is already in place (its push landed from
// a process that died before recording it, after this one looked for it) is not named again in a
// commit made for others.
func TestTrailersOnlyForCarriedEvents(t *testing.T) {
	repo := &memRepo{files: fstest.MapFS{"a.yaml": deployment("a", "acme/a:2"), "b.yaml": deployment("b", "acme/b:1")}}
	u, done := newUpdater(t, repo)
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	for _, e := range []*event.Event{ev("landed", "a", "acme/a:2", ""), ev("new", "b", "acme/b:2", "")} {
		if err := u.Submit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	go u.Run(ctx)
	defer cancel()
	waitDone(t, u, "landed", "new")
	if len(repo.commits) != 1 || strings.Contains(repo.commits[0], "Imagehook-Event: landed") || !strings.Contains(repo.commits[0], "Imagehook-Event: new") {
		t.Errorf("commits: %q", repo.commits)
	}
}

package updater

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/gitops/gitopsconfig"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/journal"
)

// peers is a replica that owns every queue; before each proof it runs the next of its hooks (a
// push by "the previous owner", landing while this replica's attempt is in flight).
type peers struct {
	mu     sync.Mutex
	proofs int
	before []func()
}

func (p *peers) Owns(string) bool { return true }

func (p *peers) Prove(context.Context, string) error {
	p.mu.Lock()
	p.proofs++
	var hook func()
	if len(p.before) > 0 {
		hook, p.before = p.before[0], p.before[1:]
	}
	p.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (p *peers) Submitted(context.Context, string, string) {}
func (p *peers) Finished(context.Context, []string)        {}

var _ Peers = (*peers)(nil)

// gitRepo opens a cache of the test server's apps repository, as imagehook's identity.
func gitRepo(t *testing.T, url string) *gitops.Repo {
	t.Helper()
	r, err := gitops.Open(gitops.Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: gitops.Auth{Username: "bot", Password: "pw"},
		Author: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}, Timeout: confyaml.Duration(30 * time.Second)}}, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConflictRetryDropsEventsAlreadyCarried: this replica's first push attempt loses to the
// previous owner's push, which landed meanwhile carrying some of the batch's events (its push was
// in flight when this replica took the queue over). The retry reads that commit's trailers: the
// events it carried are recorded as landed in it and not carried again, an event journaled later
// that it carried wins its target over the batch's older one, and the tip holds, for each target,
// the event journaled last.
func TestConflictRetryDropsEventsAlreadyCarried(t *testing.T) {
	for _, tc := range []struct {
		name string
		// batch is this replica's batch (id, workload, tag), in journal order.
		batch [][3]string
		// later are events journaled after the batch, outside it.
		later [][3]string
		// previous are the events the previous owner's commit carries.
		previous []string
		wantTip  map[string]string
		// wantLanded: events recorded as landed in the previous owner's commit.
		wantLanded []string
		// wantCarried: events this replica's commit carries ("" when it makes none).
		wantCarried []string
	}{
		{
			name:        "the previous owner carried part of the batch",
			batch:       [][3]string{{"e1", "a", "2"}, {"e2", "b", "2"}, {"e3", "a", "3"}},
			previous:    []string{"e1", "e2"},
			wantTip:     map[string]string{"a": "3", "b": "2"},
			wantLanded:  []string{"e1", "e2"},
			wantCarried: []string{"e3"},
		},
		{
			name:       "the previous owner carried the batch's winner",
			batch:      [][3]string{{"e1", "a", "2"}, {"e2", "a", "3"}, {"e3", "b", "2"}},
			previous:   []string{"e2"},
			wantTip:    map[string]string{"a": "3", "b": "2"},
			wantLanded: []string{"e2"},
			// e1 is superseded by e2, which landed: only e3 is carried.
			wantCarried: []string{"e3"},
		},
		{
			name:        "the previous owner carried an event journaled after the batch",
			batch:       [][3]string{{"e1", "a", "2"}, {"e2", "b", "2"}},
			later:       [][3]string{{"e9", "a", "9"}},
			previous:    []string{"e9"},
			wantTip:     map[string]string{"a": "9", "b": "2"},
			wantCarried: []string{"e2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			git := gitserver.New(t, "bot", "pw")
			url := git.NewRepo(t, "apps", fstest.MapFS{"a.yaml": deployment("a", "acme/a:1"), "b.yaml": deployment("b", "acme/b:1")})
			j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			all := map[string]*event.Event{}
			add := func(spec [3]string) *event.Event {
				e := ev(spec[0], spec[1], "acme/"+spec[1]+":"+spec[2], "")
				all[e.ID] = e
				return e
			}
			var batch []*event.Event
			for _, spec := range tc.batch {
				batch = append(batch, add(spec))
			}
			// The previous owner pushes while this replica's first attempt is in flight (right
			// before its proof): the attempt's push then loses the race.
			p := &peers{before: []func(){func() {
				for _, spec := range tc.later {
					// Journaled after the batch, and not in it (another replica accepted it).
					e := add(spec)
					e.Status = event.Queued
					if err := j.Insert(ctx, e); err != nil {
						t.Error(err)
					}
				}
				var carried []*event.Event
				files := map[string]string{}
				for _, id := range tc.previous {
					e := all[id]
					carried = append(carried, e)
					w := e.Targets[0].Workload[len("deployment/"):]
					files[w+".yaml"] = string(deployment(w, e.Push.Image).Data)
				}
				pushPrevious(t, url, files, carried)
			}}}
			u := New(j, map[string]Repository{"apps": {Git: gitRepo(t, url)}}, nil, nil, slog.New(slog.DiscardHandler),
				Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3, Peers: p})
			for _, e := range batch {
				if err := u.Submit(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			go u.Run(ctx)
			var ids []string
			for _, e := range batch {
				ids = append(ids, e.ID)
			}
			got := waitDone(t, u, ids...)
			if p.proofs < 2 {
				t.Errorf("%d proofs, want one per attempt (the first lost the race)", p.proofs)
			}
			entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
			if err != nil {
				t.Fatal(err)
			}
			seen, byCommit := map[string]int{}, map[string][]string{}
			for _, e := range entries {
				seen[e.Event]++
				byCommit[e.Commit] = append(byCommit[e.Commit], e.Event)
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("event %s is in %d commits' trailers", id, n)
				}
			}
			previous := entries[len(entries)-1].Commit // the oldest imagehook commit
			for _, id := range tc.wantLanded {
				st, _ := got[id].Step(event.StepGit)
				if got[id].Status != event.Succeeded || st.Reason != event.ReasonLanded || st.Commit != previous {
					t.Errorf("event %s: %s %+v, want landed in %s", id, got[id].Status, st, previous)
				}
			}
			var carried []string
			for c, evs := range byCommit {
				if c != previous {
					carried = append(carried, evs...)
				}
			}
			if strings.Join(carried, ",") != strings.Join(tc.wantCarried, ",") {
				t.Errorf("this replica's commit carries %v, want %v", carried, tc.wantCarried)
			}
			for id, e := range got {
				if e.Status != event.Succeeded {
					t.Errorf("event %s: %s %+v", id, e.Status, e.Steps)
				}
			}
			for w, tag := range tc.wantTip {
				if data := gitserver.Git(t, git.Bare("apps"), "show", "main:"+w+".yaml"); !strings.Contains(data, "acme/"+w+":"+tag+"\n") && !strings.HasSuffix(data, "acme/"+w+":"+tag) {
					t.Errorf("tip %s.yaml = %s, want tag %s", w, data, tag)
				}
			}
		})
	}
}

// pushPrevious pushes the previous owner's commit: files, and a trailer block per carried event.
func pushPrevious(t *testing.T, url string, files map[string]string, carried []*event.Event) {
	t.Helper()
	_, err := gitRepo(t, url).CommitAndPush(context.Background(), func(fs.FS) (map[string][]byte, string, error) {
		out := map[string][]byte{}
		for name, data := range files {
			out[name] = []byte(data)
		}
		msg, err := commitMessage(nil, carried, func(string) []event.Change { return nil })
		return out, msg, err
	})
	if err != nil {
		t.Fatalf("the previous owner's push: %v", err)
	}
}

package updater

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/notify/chat"
)

// robot is a chat receiver (imagehook's generic signed webhook format) that records, per post it
// answered, the events the post carried. Held, it answers nothing until released: a robot that
// hangs, or one at its rate that takes its time over each post.
type robot struct {
	srv     *httptest.Server
	mu      sync.Mutex
	posts   [][]string
	waiting int
	gate    chan struct{}
}

func newRobot(t *testing.T, held bool) *robot {
	t.Helper()
	r := &robot{gate: make(chan struct{})}
	if !held {
		close(r.gate)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		_ = json.NewDecoder(req.Body).Decode(&body)
		r.mu.Lock()
		r.waiting++
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.waiting--
			r.mu.Unlock()
		}()
		select {
		case <-r.gate:
		case <-req.Context().Done():
			return
		}
		var ids []string
		for _, e := range body.Events {
			ids = append(ids, e.ID)
		}
		r.mu.Lock()
		r.posts = append(r.posts, ids)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.release) // before Close: a held handler returns
	return r
}

func (r *robot) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.gate:
	default:
		close(r.gate)
	}
}

// answered returns the posts answered so far, and how many requests wait for an answer.
func (r *robot) answered() ([][]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.posts), r.waiting
}

func (r *robot) notifier(t *testing.T, name string, deadline time.Duration) *chat.Notifier {
	t.Helper()
	n, err := chat.New(chat.Config{Name: name, Type: "webhook", URL: r.srv.URL, Language: "en", Deadline: deadline}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reportRig is an updater over a real git server's repository, with a recording applier and the
// given notifiers.
type reportRig struct {
	t       *testing.T
	j       journal.Journal
	u       *Updater
	applier *countingApplier
	cancel  func()
}

func newReportRig(t *testing.T, files fstest.MapFS, notifiers notify.All, opts Options) *reportRig {
	t.Helper()
	j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", files)
	opts.RetryBase, opts.RetryMax = time.Millisecond, 5*time.Millisecond
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	rg := &reportRig{t: t, j: j, applier: &countingApplier{}}
	rg.u = New(j, map[string]Repository{"apps": {Git: gitRepo(t, url)}}, rg.applier, notifiers, slog.New(slog.DiscardHandler), opts)
	t.Cleanup(func() { j.Close() })
	return rg
}

func (rg *reportRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rg.u.Run(ctx); close(done) }()
	rg.cancel = func() { cancel(); <-done }
	rg.t.Cleanup(rg.cancel)
}

// final polls the journal until the event's status is final, and returns it.
func (rg *reportRig) final(id string) *event.Event {
	rg.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e, err := rg.j.Get(context.Background(), id)
		if err == nil && e.Status.Done() {
			return e
		}
		if time.Now().After(deadline) {
			rg.t.Fatalf("event %s not final: %v %+v", id, err, e)
		}
	}
}

// carriedOut polls until the event's git step succeeded or, for a direct-only event, until the
// applier has been called n times: its work is done, whatever its report is waiting for.
func (rg *reportRig) carriedOut(e *event.Event, n int) {
	rg.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if e.Repo() == "" && applies(rg.applier) >= n {
			return
		}
		if got, err := rg.j.Get(context.Background(), e.ID); err == nil && e.Repo() != "" {
			if st, ok := got.Step(event.StepGit); ok && st.Status == event.Succeeded {
				return
			}
		}
		if time.Now().After(deadline) {
			rg.t.Fatalf("event %s not carried out", e.ID)
		}
	}
}

func named(e *event.Event, hook string, notifiers ...string) *event.Event {
	e.Hook, e.Notify = hook, notifiers
	return e
}

func direct(id, image string) *event.Event {
	return &event.Event{ID: id, Hook: "h", Push: event.Push{Image: image, Source: "test"}, ReceivedAt: time.Now(),
		Targets: []event.Target{{Cluster: "prod", Namespace: "web", Workload: "deployment/web", Container: "app"}}}
}

// TestHangingRobotSlowsNothing: while a robot answers no report at all, events are carried out one
// after another — git events pushed, direct-only ones applied — as if there were no robot; their
// reports wait beside the finisher, and once the robot answers they reach it and the events are
// final.
func TestHangingRobotSlowsNothing(t *testing.T) {
	stuck := newRobot(t, true)
	rg := newReportRig(t, fstest.MapFS{"a.yaml": deployment("a", "acme/a:1")}, notify.All{stuck.notifier(t, "stuck", 2*time.Minute)}, Options{})
	rg.run()
	var ids []string
	for i := 2; i <= 6; i++ {
		for _, e := range []*event.Event{ev(fmt.Sprintf("g%d", i), "a", fmt.Sprintf("acme/a:%d", i), ""), direct(fmt.Sprintf("d%d", i), fmt.Sprintf("acme/web:%d", i))} {
			if err := rg.u.Submit(context.Background(), named(e, "h", "stuck")); err != nil {
				t.Fatal(err)
			}
			// Each is carried out before the next is sent, while the robot has answered nothing.
			rg.carriedOut(e, i-1)
			ids = append(ids, e.ID)
		}
	}
	if posts, waiting := stuck.answered(); len(posts) != 0 || waiting == 0 {
		t.Fatalf("the robot answered %d posts, %d wait: it should have answered none and be holding one", len(posts), waiting)
	}
	if applies(rg.applier) != 5 {
		t.Errorf("%d direct applies, want 5", applies(rg.applier))
	}
	stuck.release()
	got := waitDone(t, rg.u, ids...)
	for _, id := range ids {
		if got[id].Status != event.Succeeded {
			t.Errorf("event %s: %s %+v", id, got[id].Status, got[id].Steps)
		}
	}
	carried := map[string]bool{}
	posts, _ := stuck.answered()
	for _, p := range posts {
		for _, id := range p {
			carried[id] = true
		}
	}
	for _, id := range ids {
		st, _ := got[id].Step(event.StepNotify)
		if !carried[id] || st.Status != event.Succeeded || st.Detail != "sent by stuck" {
			t.Errorf("event %s: carried %v, notify step %+v", id, carried[id], st)
		}
	}
}

// TestRobotAtItsRateCoalescesAcrossCommits: 30 events are pushed in 30 commits at git's pace while
// the robot is still busy with the first report; the reports that waited meanwhile go out together
// (not one post each, one after another), every event is in a post, and every event is final then.
func TestRobotAtItsRateCoalescesAcrossCommits(t *testing.T) {
	busy := newRobot(t, true)
	rg := newReportRig(t, fstest.MapFS{"a.yaml": deployment("a", "acme/a:1")}, notify.All{busy.notifier(t, "ops", 2*time.Minute)}, Options{})
	rg.run()
	var ids []string
	for i := 2; i <= 31; i++ {
		e := named(ev(fmt.Sprintf("e%02d", i), "a", fmt.Sprintf("acme/a:%d", i), ""), "h", "ops")
		if err := rg.u.Submit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		rg.carriedOut(e, 0)
		ids = append(ids, e.ID)
	}
	commits := map[string]bool{}
	for _, id := range ids {
		e, _ := rg.j.Get(context.Background(), id)
		st, _ := e.Step(event.StepGit)
		commits[st.Commit] = true
	}
	if len(commits) != 30 {
		t.Fatalf("%d commits, want one per event", len(commits))
	}
	if posts, _ := busy.answered(); len(posts) != 0 {
		t.Fatalf("the robot answered %d posts before it was released", len(posts))
	}
	busy.release()
	got := waitDone(t, rg.u, ids...)
	posts, _ := busy.answered()
	seen, biggest := map[string]int{}, 0
	for _, p := range posts {
		biggest = max(biggest, len(p))
		for _, id := range p {
			seen[id]++
		}
	}
	if len(posts) >= 30 || biggest < 2 {
		t.Errorf("%d posts, the biggest with %d events: the reports that waited were not coalesced", len(posts), biggest)
	}
	for _, id := range ids {
		st, _ := got[id].Step(event.StepNotify)
		if seen[id] != 1 || st.Status != event.Succeeded || got[id].Status != event.Succeeded {
			t.Errorf("event %s: in %d posts, notify step %+v", id, seen[id], st)
		}
	}
}

// TestOneCommitTwoHooksNotifiers: one commit carries events of three hooks — two naming a robot
// each, one naming none. Each robot hears exactly of the event that names it, and each event's
// notify step says what was sent for it.
func TestOneCommitTwoHooksNotifiers(t *testing.T) {
	ra, rb := newRobot(t, false), newRobot(t, false)
	rg := newReportRig(t, fstest.MapFS{"a.yaml": deployment("a", "acme/a:1"), "b.yaml": deployment("b", "acme/b:1"), "c.yaml": deployment("c", "acme/c:1")},
		notify.All{ra.notifier(t, "ra", time.Minute), rb.notifier(t, "rb", time.Minute)}, Options{})
	// Submitted before the worker starts: one batch, one commit.
	for _, e := range []*event.Event{named(ev("x", "a", "acme/a:2", ""), "hook-a", "ra"), named(ev("y", "b", "acme/b:2", ""), "hook-b", "rb"),
		named(ev("z", "c", "acme/c:2", ""), "hook-c")} {
		if err := rg.u.Submit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	rg.run()
	got := waitDone(t, rg.u, "x", "y", "z")
	commits := map[string]bool{}
	for _, e := range got {
		st, _ := e.Step(event.StepGit)
		commits[st.Commit] = true
	}
	if len(commits) != 1 {
		t.Fatalf("%d commits, want one", len(commits))
	}
	pa, _ := ra.answered()
	pb, _ := rb.answered()
	if fmt.Sprint(pa) != "[[x]]" || fmt.Sprint(pb) != "[[y]]" {
		t.Errorf("robot a got %v, robot b got %v; want [[x]] and [[y]]", pa, pb)
	}
	for id, want := range map[string]string{"x": "sent by ra", "y": "sent by rb", "z": "no notifier reports this outcome of the event"} {
		st, _ := got[id].Step(event.StepNotify)
		if st.Status != event.Succeeded || st.Detail != want {
			t.Errorf("event %s: notify step %+v, want detail %q", id, st, want)
		}
	}
	if st, _ := got["z"].Step(event.StepNotify); st.Reason != event.ReasonNothingToSend {
		t.Errorf("event z's notify reason %q", st.Reason)
	}
}

// TestFailedReportIsRecordedPerNotifier: a robot that refuses fails the notify step of the events
// it carried, with its error, and only theirs; the events still succeed.
func TestFailedReportIsRecordedPerNotifier(t *testing.T) {
	good := newRobot(t, false)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad signature", http.StatusForbidden)
	}))
	defer refusing.Close()
	bad, err := chat.New(chat.Config{Name: "bad", Type: "webhook", URL: refusing.URL, Deadline: time.Minute}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rg := newReportRig(t, fstest.MapFS{"a.yaml": deployment("a", "acme/a:1"), "b.yaml": deployment("b", "acme/b:1")},
		notify.All{good.notifier(t, "good", time.Minute), bad}, Options{})
	for _, e := range []*event.Event{named(ev("x", "a", "acme/a:2", ""), "hook-a", "good", "bad"), named(ev("y", "b", "acme/b:2", ""), "hook-b", "good")} {
		if err := rg.u.Submit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	rg.run()
	got := waitDone(t, rg.u, "x", "y")
	sx, _ := got["x"].Step(event.StepNotify)
	sy, _ := got["y"].Step(event.StepNotify)
	if got["x"].Status != event.Succeeded || sx.Status != event.Failed || !strings.Contains(sx.Error, "notifier bad") || sx.Detail != "sent by good" {
		t.Errorf("event x: %s, notify step %+v", got["x"].Status, sx)
	}
	if sy.Status != event.Succeeded || sy.Detail != "sent by good" {
		t.Errorf("event y: notify step %+v", sy)
	}
}

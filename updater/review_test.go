package updater

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
)

// proposals is the Proposer seam: it records what each branch would hold. The real branch work is
// tested in gitops and against Gitea in package service.
type proposals struct {
	mu       sync.Mutex
	base     fstest.MapFS
	branches map[string]map[string][]byte
	n        int
}

func (p *proposals) Propose(_ context.Context, branch string, edit gitops.EditFunc) (gitops.Commit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	files, _, err := edit(p.base)
	if err != nil || len(files) == 0 {
		return gitops.Commit{Hash: "base"}, err
	}
	p.n++
	p.branches[branch] = files
	return gitops.Commit{Hash: fmt.Sprintf("p%d", p.n), Changed: true}, nil
}

// forgeSeam is the Forge seam: one pull request per head, whose state the test sets.
type forgeSeam struct {
	mu    sync.Mutex
	prs   map[string]*forge.PullRequest
	opens int
}

func (f *forgeSeam) Open(_ context.Context, r forge.Request) (forge.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if pr := f.prs[r.Head]; pr != nil && pr.State == forge.Open {
		return *pr, nil
	}
	pr := &forge.PullRequest{Number: int64(len(f.prs) + 1), URL: "https://forge/pr", State: forge.Open}
	f.prs[r.Head] = pr
	return *pr, nil
}

func (f *forgeSeam) Get(_ context.Context, n int64) (forge.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pr := range f.prs {
		if pr.Number == n {
			return *pr, nil
		}
	}
	return forge.PullRequest{}, fmt.Errorf("%w: no pull request %d", forge.ErrForge, n)
}

func (f *forgeSeam) AutoMerge(context.Context, int64) error { return nil }

func (f *forgeSeam) set(head, state, commit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prs[head].State, f.prs[head].MergeCommit = state, commit
}

// TestReviewSurvivesRestart: an event awaiting its pull request's merge is taken up again by the
// next process from the journal; the merge completes it from the merge commit and only then is the
// cluster patched; a closed pull request cancels its event and patches nothing.
func TestReviewSurvivesRestart(t *testing.T) {
	j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	base := fstest.MapFS{"web.yaml": deployment("web", "web:1"), "api.yaml": deployment("api", "api:1")}
	props := &proposals{base: base, branches: map[string]map[string][]byte{}}
	fg := &forgeSeam{prs: map[string]*forge.PullRequest{}}
	applier := &countingApplier{}
	start := func() (*Updater, func()) {
		rv := &Review{Git: props, Forge: fg, Base: "main", Poll: time.Hour,
			Branch: template.Must(template.New("b").Parse("imagehook/{{ .Target.Workload }}"))}
		u := New(j, map[string]Repository{"apps": {Git: &memRepo{files: base}, Review: rv}}, applier, nil, slog.New(slog.DiscardHandler),
			Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = u.Run(ctx); close(done) }()
		return u, func() { cancel(); <-done }
	}
	wait := func(u *Updater, id string) *event.Event {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			e, err := u.Wait(ctx, id)
			cancel()
			if err == nil && e.Status != event.Queued && e.Status != event.Running {
				return e
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: %v %+v", id, err, e)
			}
		}
	}
	withCluster := func(id, workload, image string) *event.Event {
		e := ev(id, workload, image, "")
		e.Targets = append(e.Targets, event.Target{Cluster: "prod", Namespace: "web", Workload: "deployment/" + workload, Container: "app"})
		return e
	}

	u, stop := start()
	for _, e := range []*event.Event{withCluster("w1", "web", "web:2"), withCluster("a1", "api", "api:2")} {
		if err := u.Submit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if got := wait(u, e.ID); got.Status != event.AwaitingMerge {
			t.Fatalf("%s: %s %+v", e.ID, got.Status, got.Steps)
		}
	}
	if applier.calls != 0 || len(props.branches) != 2 {
		t.Fatalf("before any merge: %d direct applies, branches %v", applier.calls, props.branches)
	}
	stop()

	u, stop = start()
	defer stop()
	fg.set("imagehook/deployment/web", forge.Merged, "m1")
	fg.set("imagehook/deployment/api", forge.Closed, "")
	u.PokeReviews("apps")
	w1, a1 := wait(u, "w1"), wait(u, "a1")
	for w1.Status == event.AwaitingMerge || a1.Status == event.AwaitingMerge {
		time.Sleep(10 * time.Millisecond)
		w1, a1 = wait(u, "w1"), wait(u, "a1")
	}
	if st, _ := w1.Step(event.StepGit); w1.Status != event.Succeeded || st.Commit != "m1" || st.PR == nil || st.PR.State != forge.Merged {
		t.Errorf("merged: %s %+v", w1.Status, st)
	}
	if st, _ := a1.Step(event.StepGit); a1.Status != event.Cancelled || st.Status != event.Cancelled {
		t.Errorf("closed: %s %+v", a1.Status, st)
	}
	if _, ok := a1.Step(event.StepApply); ok || applier.calls != 1 {
		t.Errorf("direct applies %d; the cancelled event has an apply step: %v", applier.calls, ok)
	}
}

// TestPullRequestBodyIsInert: payload and manifest values reach the pull request's body only as
// one-line code spans: a pusher or image with newlines, backticks or markdown stays text.
func TestPullRequestBodyIsInert(t *testing.T) {
	e := ev("e1", "web", "web:9", "")
	e.Push.Pusher = "eve`\n## Approved [click](javascript:alert(1)) @admins"
	g := &gitBatch{results: map[string]*outcome{"e1": {changes: []event.Change{{File: "web.yaml\n- fake", Workload: "deployment/web", Container: "app", Old: "web:1", New: "web:9`<b>"}}}}}
	body := prBody("en", []*event.Event{e}, g)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "## Approved") || strings.HasPrefix(line, "- fake") {
			t.Errorf("a value broke out of its line:\n%s", body)
		}
	}
	if strings.Count(body, "`")%2 != 0 || strings.Contains(body, "web:9`<b>") || strings.Contains(body, "eve`") {
		t.Errorf("a backtick broke out of a code span:\n%s", body)
	}
	if !strings.Contains(body, "`eve'") {
		t.Errorf("the pusher is not in a code span:\n%s", body)
	}
}

package updater

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/journal"
)

// proposals is the Proposer seam: it records what each branch holds, by commit, like a git server
// would; a branch whose tip the test set to a commit of someone else's is refused as gitops does.
// The real branch work is tested in gitops and against Gitea in package service.
type proposals struct {
	mu       sync.Mutex
	base     fstest.MapFS
	branches map[string]map[string][]byte
	heads    map[string]string
	commits  map[string]fstest.MapFS
	n        int
}

func newProposals(base fstest.MapFS) *proposals {
	return &proposals{base: base, branches: map[string]map[string][]byte{}, heads: map[string]string{}, commits: map[string]fstest.MapFS{}}
}

func (p *proposals) Propose(_ context.Context, branch, head string, edit gitops.EditFunc) (gitops.Commit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tip := p.heads[branch]; head != "" && tip != "" && tip != head && !strings.HasPrefix(tip, "p") {
		return gitops.Commit{}, &gitops.ForeignCommitError{Branch: branch, Tip: tip, Author: "Rita <rita@example.com>", Subject: "tweak"}
	}
	files, _, err := edit(p.base)
	if err != nil || len(files) == 0 {
		return gitops.Commit{Hash: "base"}, err
	}
	p.n++
	hash := fmt.Sprintf("p%d", p.n)
	p.branches[branch], p.heads[branch], p.commits[hash] = files, hash, p.tree(files)
	return gitops.Commit{Hash: hash, Changed: true}, nil
}

func (p *proposals) ReadAt(_ context.Context, commit string, fn func(fs.FS) error) error {
	p.mu.Lock()
	tree := p.commits[commit]
	p.mu.Unlock()
	if tree == nil {
		return fmt.Errorf("commit %s: not found", commit)
	}
	return fn(tree)
}

// tree is the base with files over it.
func (p *proposals) tree(files map[string][]byte) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range p.base {
		out[k] = v
	}
	for k, v := range files {
		out[k] = &fstest.MapFile{Data: v}
	}
	return out
}

// head is the branch's tip: what merging it brings to the base.
func (p *proposals) head(branch string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heads[branch]
}

// commit records a commit of someone else's holding files over the base; on branch, it becomes
// the branch's tip.
func (p *proposals) commit(hash, branch string, files map[string][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commits[hash] = p.tree(files)
	if branch != "" {
		p.heads[branch] = hash
	}
}

// forgeSeam is the Forge seam: one pull request per head branch, whose head is the branch's tip
// in props and whose state the test sets; it records auto-merges, cancels and comments.
type forgeSeam struct {
	mu       sync.Mutex
	props    *proposals
	prs      map[string]*forge.PullRequest
	opens    int
	merges   []string
	cancels  int
	comments []string
}

func newForgeSeam(props *proposals) *forgeSeam {
	return &forgeSeam{props: props, prs: map[string]*forge.PullRequest{}}
}

func (f *forgeSeam) Open(_ context.Context, r forge.Request) (forge.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if pr := f.prs[r.Head]; pr != nil && pr.State == forge.Open {
		pr.Head = f.props.head(r.Head)
		return *pr, nil
	}
	pr := &forge.PullRequest{Number: int64(len(f.prs) + 1), URL: "https://forge/pr", State: forge.Open, Head: f.props.head(r.Head)}
	f.prs[r.Head] = pr
	return *pr, nil
}

func (f *forgeSeam) Get(_ context.Context, n int64) (forge.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for head, pr := range f.prs {
		if pr.Number == n {
			if pr.State == forge.Open {
				pr.Head = f.props.head(head)
			}
			return *pr, nil
		}
	}
	return forge.PullRequest{}, fmt.Errorf("%w: no pull request %d", forge.ErrForge, n)
}

func (f *forgeSeam) AutoMerge(_ context.Context, n int64, head string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.merges = append(f.merges, fmt.Sprintf("#%d@%s", n, head))
	return nil
}

func (f *forgeSeam) CancelAutoMerge(context.Context, int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	return nil
}

func (f *forgeSeam) Comment(_ context.Context, n int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comments = append(f.comments, body)
	return nil
}

// set sets a pull request's state; merging it makes commit the merge commit.
func (f *forgeSeam) set(head, state, commit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prs[head].State, f.prs[head].MergeCommit = state, commit
}

// reviewRig runs updaters over one journal and one forge, as restarts or replicas do.
type reviewRig struct {
	t       *testing.T
	j       journal.Journal
	base    fstest.MapFS
	props   *proposals
	fg      *forgeSeam
	applier *countingApplier
}

func newReviewRig(t *testing.T) *reviewRig {
	j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	base := fstest.MapFS{"web.yaml": deployment("web", "web:1"), "api.yaml": deployment("api", "api:1")}
	props := newProposals(base)
	return &reviewRig{t: t, j: j, base: base, props: props, fg: newForgeSeam(props), applier: &countingApplier{}}
}

// start runs an updater until the returned stop; peers and applier may be nil (no replicas, the
// rig's applier).
func (rg *reviewRig) start(autoMerge bool, peers Peers, applier Applier) (*Updater, func()) {
	if applier == nil {
		applier = rg.applier
	}
	wb := forge.WriteBack{Mode: "pullRequest", PollInterval: confyaml.Duration(time.Hour)}
	if autoMerge {
		wb.Merge = "auto"
	}
	rv := &Review{Git: rg.props, Forge: rg.fg, Base: "main", WriteBack: wb,
		Branch: template.Must(template.New("b").Parse("imagehook/{{ .Target.Workload }}"))}
	u := New(rg.j, map[string]Repository{"apps": {Git: &memRepo{files: rg.base}, Review: rv}}, applier, nil, slog.New(slog.DiscardHandler),
		Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3, Peers: peers})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = u.Run(ctx); close(done) }()
	return u, func() { cancel(); <-done }
}

// until polls the journal until the event's status is want.
func (rg *reviewRig) until(u *Updater, id string, want event.Status) *event.Event {
	rg.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		u.PokeReviews("apps")
		e, err := rg.j.Get(context.Background(), id)
		if err == nil && e.Status == want {
			return e
		}
		if time.Now().After(deadline) {
			rg.t.Fatalf("event %s: %v, status %v, want %s: %+v", id, err, e.Status, want, e.Steps)
		}
	}
}

func withCluster(id, workload, image string) *event.Event {
	e := ev(id, workload, image, "")
	e.Targets = append(e.Targets, event.Target{Cluster: "prod", Namespace: "web", Workload: "deployment/" + workload, Container: "app"})
	return e
}

// TestReviewSurvivesRestart: an event awaiting its pull request's merge is taken up again by the
// next process from the journal; the merge completes it from the merge commit and only then is the
// cluster patched; a closed pull request cancels its event and patches nothing.
func TestReviewSurvivesRestart(t *testing.T) {
	rg := newReviewRig(t)
	u, stop := rg.start(false, nil, nil)
	for _, e := range []*event.Event{withCluster("w1", "web", "web:2"), withCluster("a1", "api", "api:2")} {
		if err := u.Submit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		rg.until(u, e.ID, event.AwaitingMerge)
	}
	if applies(rg.applier) != 0 || len(rg.props.branches) != 2 {
		t.Fatalf("before any merge: %d direct applies, branches %v", applies(rg.applier), rg.props.branches)
	}
	stop()

	u, stop = rg.start(false, nil, nil)
	defer stop()
	merge := rg.props.head("imagehook/deployment/web")
	rg.fg.set("imagehook/deployment/web", forge.Merged, merge)
	rg.fg.set("imagehook/deployment/api", forge.Closed, "")
	w1, a1 := rg.until(u, "w1", event.Succeeded), rg.until(u, "a1", event.Cancelled)
	if st, _ := w1.Step(event.StepGit); st.Commit != merge || st.PR == nil || st.PR.State != forge.Merged || st.PR.Head != merge {
		t.Errorf("merged: %+v", st)
	}
	if st, _ := a1.Step(event.StepGit); st.Status != event.Cancelled {
		t.Errorf("closed: %+v", st)
	}
	if _, ok := a1.Step(event.StepApply); ok || applies(rg.applier) != 1 {
		t.Errorf("direct applies %d; the cancelled event has an apply step: %v", applies(rg.applier), ok)
	}
}

// TestMergedWithOtherContent: a pull request merged with another image than imagehook proposed
// (someone pushed evil/web:6.6.6 to the branch, or edited it in the merge) fails its event with a
// typed reason saying what the base runs, and nothing is applied to the cluster.
func TestMergedWithOtherContent(t *testing.T) {
	rg := newReviewRig(t)
	u, stop := rg.start(false, nil, nil)
	defer stop()
	e := withCluster("w1", "web", "web:2")
	e.NoDowngrade = true // a higher version on the base is still another image
	if err := u.Submit(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	rg.until(u, "w1", event.AwaitingMerge)
	rg.props.commit("m-evil", "", map[string][]byte{"web.yaml": deployment("web", "evil/web:6.6.6").Data})
	rg.fg.set("imagehook/deployment/web", forge.Merged, "m-evil")
	got := rg.until(u, "w1", event.Failed)
	st, _ := got.Step(event.StepGit)
	if st.Reason != event.ReasonMergedOtherContent || st.Error != "merged with other content: main runs evil/web:6.6.6" || st.Commit != "m-evil" {
		t.Errorf("git step: %+v", st)
	}
	apply, ok := got.Step(event.StepApply)
	if applies(rg.applier) != 0 || !ok || apply.Status != event.Ignored || apply.Reason != event.ReasonMergedOtherContent {
		t.Errorf("direct applies %d, apply step %+v", applies(rg.applier), apply)
	}
	if a, _ := rg.j.Current(context.Background(), e.Targets[0].Key()); a.Event == "w1" {
		t.Error("the event is recorded as applied to its target")
	}
}

// TestClosedReopenedMerged: a pull request closed without merging cancels its events but stays
// followed — across a restart, from the journal — so that reopening it makes them await the merge
// again and merging it completes them (direct apply included).
func TestClosedReopenedMerged(t *testing.T) {
	rg := newReviewRig(t)
	u, stop := rg.start(false, nil, nil)
	if err := u.Submit(context.Background(), withCluster("w1", "web", "web:2")); err != nil {
		t.Fatal(err)
	}
	rg.until(u, "w1", event.AwaitingMerge)
	rg.fg.set("imagehook/deployment/web", forge.Closed, "")
	rg.until(u, "w1", event.Cancelled)
	stop()

	u, stop = rg.start(false, nil, nil)
	defer stop()
	rg.fg.set("imagehook/deployment/web", forge.Open, "")
	got := rg.until(u, "w1", event.AwaitingMerge)
	if st, _ := got.Step(event.StepGit); st.Reason != event.ReasonReopened || st.Status != event.AwaitingMerge {
		t.Errorf("reopened: %+v", st)
	}
	merge := rg.props.head("imagehook/deployment/web")
	rg.fg.set("imagehook/deployment/web", forge.Merged, merge)
	got = rg.until(u, "w1", event.Succeeded)
	if st, _ := got.Step(event.StepGit); st.Commit != merge || applies(rg.applier) != 1 {
		t.Errorf("merged: %+v, %d direct applies", st, applies(rg.applier))
	}
}

// applies is how many direct applies a has made.
func applies(a *countingApplier) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// peersSeam is the Peers seam: whether this replica owns the repository's queue.
type peersSeam struct{ owns atomic.Bool }

func (p *peersSeam) Owns(string) bool                          { return p.owns.Load() }
func (p *peersSeam) Submitted(context.Context, string, string) {}
func (p *peersSeam) Finished(context.Context, []string)        {}
func (p *peersSeam) Prove(context.Context, string) error {
	if !p.owns.Load() {
		return errors.New("not the owner")
	}
	return nil
}

// TestOnlyTheOwnerCompletes: two replicas follow the same pull request from the shared journal;
// when it is merged only the queue's owner completes its events (one direct apply), and a replica
// that owns the queue later finds nothing left to complete.
func TestOnlyTheOwnerCompletes(t *testing.T) {
	rg := newReviewRig(t)
	owner, other := &peersSeam{}, &peersSeam{}
	owner.owns.Store(true)
	otherApplier := &countingApplier{}
	a, stopA := rg.start(false, owner, nil)
	defer stopA()
	if err := a.Submit(context.Background(), withCluster("w1", "web", "web:2")); err != nil {
		t.Fatal(err)
	}
	rg.until(a, "w1", event.AwaitingMerge)
	b, stopB := rg.start(false, other, otherApplier)
	defer stopB()
	rg.fg.set("imagehook/deployment/web", forge.Merged, rg.props.head("imagehook/deployment/web"))
	b.PokeReviews("apps")
	rg.until(a, "w1", event.Succeeded)
	// The other replica becomes owner (the first one's session ended): its memory still holds the
	// pull request, but the journal says the event is done.
	other.owns.Store(true)
	if err := b.Resume(context.Background(), "apps"); err != nil {
		t.Fatal(err)
	}
	b.PokeReviews("apps")
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b.PokeReviews("apps")
	}
	if applies(rg.applier) != 1 || applies(otherApplier) != 0 {
		t.Errorf("direct applies: owner %d, other replica %d; want 1 and 0", applies(rg.applier), applies(otherApplier))
	}
}

// TestLateNoticeFollowsTheAwaitingEvent: a notification read by a replica that never saw its
// event (it became the queue's owner after the event went on to await its pull request's merge)
// follows that pull request: nothing is proposed again, and the merge completes the event there.
func TestLateNoticeFollowsTheAwaitingEvent(t *testing.T) {
	rg := newReviewRig(t)
	first, next := &peersSeam{}, &peersSeam{}
	first.owns.Store(true)
	b, stopB := rg.start(false, next, nil) // started while the journal is empty
	defer stopB()
	a, stopA := rg.start(false, first, nil)
	if err := a.Submit(context.Background(), withCluster("w1", "web", "web:2")); err != nil {
		t.Fatal(err)
	}
	rg.until(a, "w1", event.AwaitingMerge)
	stopA()
	proposed := func() int {
		rg.props.mu.Lock()
		defer rg.props.mu.Unlock()
		return rg.props.n
	}
	before := proposed()
	next.owns.Store(true)
	b.Take("apps", "w1")
	rg.fg.set("imagehook/deployment/web", forge.Merged, rg.props.head("imagehook/deployment/web"))
	rg.until(b, "w1", event.Succeeded)
	if n := proposed(); n != before {
		t.Errorf("%d proposals after the late notice, want %d: the event ran again instead of being followed", n, before)
	}
}

// TestForeignCommitIsNeverDropped: a commit someone else pushed to imagehook's branch is reported
// once — auto-merge withdrawn, a comment on the pull request, the reason on the events it carries —
// and the next push for the branch fails with that reason instead of force-pushing it away.
func TestForeignCommitIsNeverDropped(t *testing.T) {
	rg := newReviewRig(t)
	u, stop := rg.start(true, nil, nil)
	defer stop()
	if err := u.Submit(context.Background(), ev("w1", "web", "web:2", "")); err != nil {
		t.Fatal(err)
	}
	rg.until(u, "w1", event.AwaitingMerge)
	if len(rg.fg.merges) != 1 || rg.fg.merges[0] != "#1@"+rg.props.head("imagehook/deployment/web") {
		t.Fatalf("auto-merge: %v, want the head imagehook pushed", rg.fg.merges)
	}
	rg.props.commit("rita1", "imagehook/deployment/web", map[string][]byte{"web.yaml": deployment("web", "web:2-patched").Data})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		u.PokeReviews("apps")
		e, _ := rg.j.Get(context.Background(), "w1")
		if st, _ := e.Step(event.StepGit); st.Reason == event.ReasonForeignCommit {
			if e.Status != event.AwaitingMerge || !strings.Contains(st.Detail, "rita1") {
				t.Errorf("carried event: %s %+v", e.Status, st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the foreign commit was not reported: %+v", e.Steps)
		}
	}
	if err := u.Submit(context.Background(), ev("w2", "web", "web:3", "")); err != nil {
		t.Fatal(err)
	}
	got := rg.until(u, "w2", event.Failed)
	if st, _ := got.Step(event.StepGit); st.Reason != event.ReasonForeignCommit || !strings.Contains(st.Error, "will not force-push") {
		t.Errorf("next push: %+v", st)
	}
	if rg.props.head("imagehook/deployment/web") != "rita1" {
		t.Error("the branch was rebuilt over the foreign commit")
	}
	rg.fg.mu.Lock()
	defer rg.fg.mu.Unlock()
	if rg.fg.cancels != 1 || len(rg.fg.comments) != 1 || !strings.Contains(rg.fg.comments[0], "`rita1`") {
		t.Errorf("cancels %d, comments %q; want one of each", rg.fg.cancels, rg.fg.comments)
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

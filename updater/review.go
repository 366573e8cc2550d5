package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops"
)

// Proposer pushes a commit built on the base branch to one of imagehook's own branches.
type Proposer interface {
	Propose(ctx context.Context, branch string, edit gitops.EditFunc) (gitops.Commit, error)
}

// Review is a repository written through pull requests: each change goes to imagehook's branch for
// its target, a pull request carries it to the base branch, and the events wait, "awaiting merge",
// until the forge says it was merged (they then complete from the merge commit) or closed
// (cancelled).
type Review struct {
	Git   Proposer
	Forge forge.Forge
	// Base is the branch pull requests go to.
	Base string
	// Branch names the branch of a target (data: BranchData).
	Branch    *template.Template
	Labels    []string
	Reviewers []string
	AutoMerge bool
	// Language of titles and bodies: en or zh.
	Language string
	// Poll is how often open pull requests are read (webhooks make it sooner).
	Poll time.Duration

	// mu keeps the worker (which rebuilds branches) and the watcher (which completes merged pull
	// requests) from working on the same events at once.
	mu sync.Mutex
	// open holds, per branch, the events its pull request carries.
	open map[string]*proposal
	poke chan struct{}
}

type proposal struct {
	pr     event.PullRequest
	events []*event.Event
}

// BranchData is what a branch template sees.
type BranchData struct {
	Hook   string
	Target event.Target
}

// Poke makes the watcher read the repository's pull requests now (a forge webhook arrived).
func (r *Review) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func (r *Review) init() {
	r.open = map[string]*proposal{}
	r.poke = make(chan struct{}, 1)
	if r.Poll == 0 {
		r.Poll = time.Minute
	}
}

// branchOf names the branch an event's change goes to: the template over its first target in the
// repository, made a safe ref name.
func (r *Review) branchOf(key string, ev *event.Event) (string, error) {
	for _, t := range ev.Targets {
		if t.Repo != key {
			continue
		}
		var b strings.Builder
		if err := r.Branch.Execute(&b, BranchData{Hook: ev.Hook, Target: t}); err != nil {
			return "", fmt.Errorf("branch template: %w", err)
		}
		name := refName(b.String())
		if name == "" || name == r.Base {
			return "", fmt.Errorf("branch template gives %q, which cannot be imagehook's branch", b.String())
		}
		return name, nil
	}
	return "", errors.New("no target in this repository")
}

// refName keeps a branch name to the characters git and every forge accept, whatever a payload
// put into the values the template sees.
func refName(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '/', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	parts := strings.Split(b.String(), "/")
	out := parts[:0]
	for _, p := range parts {
		p = strings.Trim(p, ".-")
		if p != "" && !strings.HasSuffix(p, ".lock") {
			out = append(out, p)
		}
	}
	name := strings.Join(out, "/")
	if len(name) > 200 {
		name = name[:200]
	}
	return strings.Trim(name, "/.")
}

// reviewStep proposes a batch: per branch, the events its pull request already carries and the new
// ones are rewritten together over the base tip (the journal order decides each target), pushed to
// the branch, and the pull request opened or updated. It reports whether the batch should be
// retried. Events that end here (nothing to change, a failure) are left for the caller to finish;
// carried events are "awaiting merge".
func (u *Updater) reviewStep(ctx context.Context, log *slog.Logger, key string, r Repository, batch []*event.Event) bool {
	rv := r.Review
	rv.mu.Lock()
	defer rv.mu.Unlock()
	groups := map[string][]*event.Event{}
	var order []string
	for _, ev := range batch {
		branch, err := rv.branchOf(key, ev)
		if err != nil {
			ev.SetStep(event.Step{Name: event.StepGit, Repo: key, Status: event.Failed, Error: err.Error(), At: time.Now()})
			continue
		}
		if groups[branch] == nil {
			order = append(order, branch)
		}
		groups[branch] = append(groups[branch], ev)
	}
	retry := false
	for _, branch := range order {
		if u.propose(ctx, log, key, r, branch, groups[branch]) {
			retry = true
		}
	}
	return retry
}

func (u *Updater) propose(ctx context.Context, log *slog.Logger, key string, r Repository, branch string, fresh []*event.Event) bool {
	rv := r.Review
	var carried []*event.Event
	if p := rv.open[branch]; p != nil {
		carried = p.events
	}
	all := append(append([]*event.Event(nil), carried...), fresh...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	g := planBatch(key, all, u.opts, r.Template)
	started := time.Now()
	commit, err := rv.Git.Propose(ctx, branch, u.owned(ctx, key, g.edit))
	u.observeGit(commit, err, fresh, started)
	fail := func(err error, retry bool) bool {
		log.Error("pull request step failed", "branch", branch, "events", eventIDs(fresh), "err", err, "retry", retry)
		for _, ev := range fresh {
			ev.SetStep(event.Step{Name: event.StepGit, Repo: key, Status: event.Failed, Error: err.Error(), At: time.Now()})
		}
		return retry
	}
	if err != nil {
		return fail(err, !errors.Is(err, gitops.ErrRejected) && !errors.Is(err, gitops.ErrAuth) && !errors.Is(err, gitops.ErrBaseBranch))
	}
	g.record(commit, r.CommitURL)
	if !commit.Changed {
		// The base already holds every change (merged by hand, or nothing to do): whatever the
		// branch's pull request carried is done.
		delete(rv.open, branch)
		u.settleCarried(ctx, log, key, carried, fresh)
		return false
	}
	pr, err := rv.Forge.Open(ctx, forge.Request{Head: branch, Base: rv.Base, Title: prTitle(rv.Language, all, g),
		Body: prBody(rv.Language, all, g), Labels: rv.Labels, Reviewers: rv.Reviewers})
	if err != nil && pr.Number == 0 {
		// The branch is pushed; the next attempt pushes it again and opens the pull request.
		return fail(fmt.Errorf("pull request: %w", err), !errors.Is(err, context.Canceled))
	}
	detail := ""
	if err != nil {
		detail = err.Error() // labels or reviewers refused: the pull request is open all the same
	}
	if rv.AutoMerge && pr.State == forge.Open {
		if err := rv.Forge.AutoMerge(ctx, pr.Number); err != nil {
			log.Warn("auto-merge not enabled", "pr", pr.Number, "err", err)
			detail = strings.TrimPrefix(detail+"; auto-merge: "+err.Error(), "; ")
		}
	}
	ref := event.PullRequest{Number: pr.Number, URL: pr.URL, Branch: branch, State: forge.Open}
	p := &proposal{pr: ref}
	for _, ev := range all {
		st, ok := ev.Step(event.StepGit)
		if !ok || st.Status != event.Succeeded || (len(st.Files) == 0 && !g.superseded(ev)) {
			continue // failed, ignored, or nothing of its own to merge
		}
		st.Status, st.PR = event.AwaitingMerge, &ref
		if detail != "" {
			st.Detail = strings.TrimPrefix(st.Detail+"; "+detail, "; ")
		}
		ev.SetStep(st)
		ev.Status = event.AwaitingMerge
		p.events = append(p.events, ev)
	}
	rv.open[branch] = p
	u.settleCarried(ctx, log, key, carried, nil)
	log.Info("pull request updated", "branch", branch, "pr", pr.Number, "url", pr.URL, "events", eventIDs(p.events))
	return false
}

// settleCarried saves the events a pull request carried before this step; those no longer
// awaiting (their change is on the base already) are handed to the finisher. The fresh events are
// the caller's to save and finish.
func (u *Updater) settleCarried(ctx context.Context, log *slog.Logger, key string, carried, fresh []*event.Event) {
	if len(carried) == 0 {
		return
	}
	u.saveMany(ctx, log, carried)
	var done []*event.Event
	for _, ev := range carried {
		if ev.Status != event.AwaitingMerge {
			ev.Status = event.Running
			done = append(done, ev)
		}
	}
	if len(done) > 0 {
		u.handOverKey(key, done)
	}
	_ = fresh
}

// handOverKey gives events to a repository's finisher.
func (u *Updater) handOverKey(key string, evs []*event.Event) {
	u.mu.Lock()
	q := u.queueLocked(key)
	u.mu.Unlock()
	u.handOver(q, evs)
}

// adopt takes an event found awaiting merge in the journal at start.
func (u *Updater) adopt(ev *event.Event) bool {
	key := ev.Repo()
	r, ok := u.repos[key]
	st, has := ev.Step(event.StepGit)
	if !ok || r.Review == nil || !has || st.PR == nil {
		return false
	}
	r.Review.mu.Lock()
	defer r.Review.mu.Unlock()
	p := r.Review.open[st.PR.Branch]
	if p == nil || p.pr.Number != st.PR.Number {
		p = &proposal{pr: *st.PR}
		r.Review.open[st.PR.Branch] = p
	}
	p.events = append(p.events, ev)
	u.mu.Lock()
	u.tracked[ev.ID] = true
	u.mu.Unlock()
	return true
}

// watch reads the repository's open pull requests every Poll, and at once when poked.
func (u *Updater) watch(ctx context.Context, key string, rv *Review) {
	log := u.log.With("repo", key)
	t := time.NewTicker(rv.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rv.poke:
		}
		u.checkReviews(context.WithoutCancel(ctx), log, key, rv)
	}
}

// checkReviews completes the events of merged pull requests from the merge commit (direct apply
// and notifications follow, as after a push), and cancels those of pull requests closed unmerged.
func (u *Updater) checkReviews(ctx context.Context, log *slog.Logger, key string, rv *Review) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for branch, p := range rv.open {
		pr, err := rv.Forge.Get(ctx, p.pr.Number)
		if err != nil {
			log.Warn("reading a pull request", "pr", p.pr.Number, "err", err)
			continue
		}
		if pr.State == forge.Open {
			continue
		}
		delete(rv.open, branch)
		ref := p.pr
		ref.State = pr.State
		now := time.Now()
		for _, ev := range p.events {
			st, _ := ev.Step(event.StepGit)
			st.PR, st.At = &ref, now
			if pr.State == forge.Merged {
				st.Status, st.Commit = event.Succeeded, pr.MergeCommit
				st.Detail = fmt.Sprintf("merged in pull request #%d", pr.Number)
				ev.Status = event.Running
			} else {
				st.Status = event.Cancelled
				st.Detail = fmt.Sprintf("pull request #%d was closed without merging", pr.Number)
				ev.Status = event.Cancelled
			}
			ev.SetStep(st)
		}
		if pr.State == forge.Merged {
			u.recordApplied(ctx, log, p.events, func(t event.Target) bool { return t.Repo != "" })
			u.saveMany(ctx, log, p.events)
			log.Info("pull request merged", "pr", pr.Number, "commit", pr.MergeCommit, "events", eventIDs(p.events))
			u.handOverKey(key, p.events)
			continue
		}
		log.Info("pull request closed without merging", "pr", pr.Number, "events", eventIDs(p.events))
		u.finishMany(ctx, log, p.events)
	}
}

// prTitle is the pull request's title: the change, or how many.
func prTitle(lang string, evs []*event.Event, g *gitBatch) string {
	changes := prChanges(evs, g)
	if len(changes) == 1 {
		c := changes[0]
		if lang == "zh" {
			return fmt.Sprintf("imagehook：将 %s 的 %s 更新为 %s", c.Workload, c.Container, c.New)
		}
		return fmt.Sprintf("imagehook: %s %s to %s", c.Workload, c.Container, c.New)
	}
	if lang == "zh" {
		return fmt.Sprintf("imagehook：更新 %d 个镜像", len(changes))
	}
	return fmt.Sprintf("imagehook: update %d images", len(changes))
}

// prBody lists the changes and the pushes behind them. Every value comes from a payload or the
// manifests (untrusted), so each is one line in a code span: nothing in it renders as a link,
// mention or HTML.
func prBody(lang string, evs []*event.Event, g *gitBatch) string {
	var b strings.Builder
	head := [3]string{"Changes", "Pushes", "Merging this pull request deploys the new images; imagehook follows it and reports the outcome."}
	if lang == "zh" {
		head = [3]string{"变更", "推送", "合并此拉取请求即部署新镜像；imagehook 会跟进并报告结果。"}
	}
	fmt.Fprintf(&b, "### %s\n\n", head[0])
	for _, c := range prChanges(evs, g) {
		fmt.Fprintf(&b, "- %s (%s) `%s`: %s → %s\n", code(c.Workload), code(c.Container), strings.ReplaceAll(event.OneLine(c.File), "`", "'"), code(c.Old), code(c.New))
	}
	fmt.Fprintf(&b, "\n### %s\n\n", head[1])
	for _, ev := range evs {
		p := ev.Printable()
		fmt.Fprintf(&b, "- %s: %s", code(p.ID), code(p.Push.Ref()))
		if p.Push.Pusher != "" {
			fmt.Fprintf(&b, " by %s", code(p.Push.Pusher))
		}
		fmt.Fprintf(&b, " (%s, hook %s)\n", code(p.Push.Source), code(p.Hook))
	}
	fmt.Fprintf(&b, "\n%s\n", head[2])
	return b.String()
}

// prChanges are the changes the pull request makes (old differs from new).
func prChanges(evs []*event.Event, g *gitBatch) []event.Change {
	var out []event.Change
	for _, ev := range evs {
		if r := g.results[ev.ID]; r != nil {
			for _, c := range r.changes {
				if c.Old != c.New {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// code puts an untrusted value in a Markdown code span.
func code(s string) string {
	s = strings.ReplaceAll(event.OneLine(s), "`", "'")
	if s == "" {
		return "``"
	}
	return "`" + s + "`"
}

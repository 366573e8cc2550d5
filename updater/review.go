package updater

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/lang"
	"github.com/imagehook/imagehook/manifests"
)

// Proposer pushes a commit built on the base branch to one of imagehook's own branches, and reads
// the commit a merge made.
type Proposer interface {
	// Propose rebuilds branch on the base; head is the commit imagehook last pushed there for a
	// pull request it follows ("" for none), and a branch that ends elsewhere is left alone
	// (gitops.ErrForeignCommit).
	Propose(ctx context.Context, branch, head string, edit gitops.EditFunc) (gitops.Commit, error)
	// ReadAt calls fn with the tree of commit.
	ReadAt(ctx context.Context, commit string, fn func(fs.FS) error) error
}

// reviews is the flow's part for repositories written through pull requests: the step that
// proposes a batch, and the watcher that completes, cancels or reopens what a pull request
// carries.
type reviews struct{ f *flow }

// Review is a repository written through pull requests: each change goes to imagehook's branch for
// its target, a pull request carries it to the base branch, and the events wait, "awaiting merge",
// until the forge says it was merged (they then complete from the merge commit, once its images
// are checked) or closed (cancelled, and followed until the retention: a reopen and merge
// completes them).
//
// imagehook only ever updates, auto-merges or completes a pull request it opened itself, from its
// own branch in the repository (never a fork's with the same branch name), and it remembers the
// head it pushed: the branch is rebuilt, and auto-merged, only while it still ends there.
type Review struct {
	Git   Proposer
	Forge forge.Forge
	// Base is the branch pull requests go to.
	Base string
	// Branch names the branch of a target (data: BranchData): WriteBack.Branch, parsed.
	Branch *template.Template
	// WriteBack is the repository's writeBack: section, as the forge owns it: the pull requests'
	// labels, reviewers, merge (auto: the forge merges) and language (en or zh), and how often
	// followed pull requests are read when no webhook comes (pollInterval; required, its default
	// of 1m is set at load by forge.WriteBack.SetDefaults).
	WriteBack forge.WriteBack

	// mu keeps the worker (which rebuilds branches) and the watcher (which completes merged pull
	// requests) from working on the same events at once.
	mu sync.Mutex
	// prs holds the pull requests imagehook follows, by number: the open ones, and those closed
	// without merging until the retention.
	prs map[int64]*proposal
	// active names, per branch, the pull request the branch's next change goes to.
	active map[string]int64
	poke   chan struct{}
}

// proposal is one pull request imagehook opened, and the events it carries.
type proposal struct {
	// pr.Head is the commit imagehook last pushed to the branch.
	pr     event.PullRequest
	events []*event.Event
	// pushed are the heads this process pushed for it: just after a push the forge may still
	// report the one before.
	pushed []string
	// closedAt is when imagehook saw it closed unmerged (zero while open).
	closedAt time.Time
	// foreign is the commit imagehook did not push that it last reported (once per commit).
	foreign string
}

// add carries ev, replacing an older copy of it.
func (p *proposal) add(ev *event.Event) {
	for i, old := range p.events {
		if old.ID == ev.ID {
			p.events[i] = ev
			return
		}
	}
	p.events = append(p.events, ev)
}

// ours reports whether head is a commit imagehook pushed for the pull request.
func (p *proposal) ours(head string) bool {
	return head == "" || head == p.pr.Head || slices.Contains(p.pushed, head)
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
	r.prs = map[int64]*proposal{}
	r.active = map[string]int64{}
	r.poke = make(chan struct{}, 1)
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
func (s *reviews) step(ctx context.Context, log *slog.Logger, key string, r Repository, batch []*event.Event) bool {
	rv := r.Review
	rv.mu.Lock()
	defer rv.mu.Unlock()
	groups := map[string][]*event.Event{}
	var order []string
	for _, ev := range batch {
		branch, err := rv.branchOf(key, ev)
		if err != nil {
			ev.SetStep(gitFailed(key, err, ""))
			continue
		}
		if groups[branch] == nil {
			order = append(order, branch)
		}
		groups[branch] = append(groups[branch], ev)
	}
	retry := false
	for _, branch := range order {
		if s.propose(ctx, log, key, r, branch, groups[branch]) {
			retry = true
		}
	}
	return retry
}

// propose rebuilds one branch over the base tip with the events its pull request carries and the
// fresh ones, pushes it, and opens or updates the pull request (open). It reports whether the
// fresh events should be retried.
func (s *reviews) propose(ctx context.Context, log *slog.Logger, key string, r Repository, branch string, fresh []*event.Event) bool {
	rv := r.Review
	fail := func(err error, reason event.Reason, retry bool) bool {
		log.Error("pull request step failed", "branch", branch, "events", eventIDs(fresh), "err", err, "reason", reason, "retry", retry)
		for _, ev := range fresh {
			ev.SetStep(gitFailed(key, err, reason))
		}
		return retry
	}
	p := rv.prs[rv.active[branch]]
	var carried []*event.Event
	head := ""
	if p != nil {
		// The journal, not this process's memory, says what the pull request still carries:
		// another replica may have completed or extended it while it worked the queue.
		var err error
		if carried, err = s.current(ctx, p, event.AwaitingMerge); err != nil {
			return fail(fmt.Errorf("reading the events pull request #%d carries: %w", p.pr.Number, err), event.ReasonJournalUnavailable, true)
		}
		p.events, head = carried, p.pr.Head
	}
	all := append(append([]*event.Event(nil), carried...), fresh...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	g := planBatch(key, all, s.f.opts, r.Template)
	started := time.Now()
	commit, err := rv.Git.Propose(ctx, branch, head, s.f.owned(ctx, key, g.edit))
	s.f.observeGit(commit, err, fresh, started)
	var foreign *gitops.ForeignCommitError
	if errors.As(err, &foreign) {
		detail := s.foreignCommit(ctx, log, rv, p, foreign.Tip, fmt.Sprintf("%s (%s)", foreign.Author, foreign.Subject))
		return fail(errors.New(detail), event.ReasonForeignCommit, false)
	}
	if err != nil {
		return fail(err, "", !errors.Is(err, gitops.ErrRejected) && !errors.Is(err, gitops.ErrAuth) && !errors.Is(err, gitops.ErrBaseBranch))
	}
	g.record(commit, r.CommitURL)
	if !commit.Changed {
		// The base already holds every change (merged by hand, or nothing to do): whatever the
		// branch's pull request carried is done.
		if p != nil {
			delete(rv.active, branch)
			delete(rv.prs, p.pr.Number)
		}
		s.settleCarried(ctx, log, key, carried)
		return false
	}
	p, details, reason, err := s.open(ctx, log, rv, p, branch, commit, all, g)
	if err != nil {
		return fail(err, reason, reason == "" && !errors.Is(err, context.Canceled))
	}
	ref := p.pr
	p.events = nil
	for _, ev := range all {
		st, ok := ev.Step(event.StepGit)
		if !ok || st.Status != event.Succeeded || (len(st.Files) == 0 && !g.superseded(ev)) {
			continue // failed, ignored, or nothing of its own to merge
		}
		st.Status, st.PR = event.AwaitingMerge, &ref
		if len(details) > 0 {
			st.Detail = strings.TrimPrefix(st.Detail+"; "+strings.Join(details, "; "), "; ")
		}
		if reason != "" {
			st.Reason = reason
		}
		ev.SetStep(st)
		ev.Await()
		p.events = append(p.events, ev)
	}
	s.settleCarried(ctx, log, key, carried)
	log.Info("pull request updated", "branch", branch, "pr", ref.Number, "url", ref.URL, "head", commit.Hash, "events", eventIDs(p.events))
	return false
}

// open opens (or finds, and updates) the pull request for a pushed branch, follows it, and asks
// for its auto-merge. It returns the proposal, what the events' steps should add to their detail
// (labels refused, look-alikes left alone, auto-merge not asked) with its reason, or the error
// that fails the fresh events — with a reason when it is final, without one when the next attempt
// pushes the branch again and retries.
func (s *reviews) open(ctx context.Context, log *slog.Logger, rv *Review, p *proposal, branch string, commit gitops.Commit,
	all []*event.Event, g *gitBatch) (*proposal, []string, event.Reason, error) {
	pr, err := rv.Forge.Open(ctx, forge.Request{Head: branch, Base: rv.Base, Title: prTitle(rv.WriteBack.Language, all, g),
		Body: prBody(rv.WriteBack.Language, all, g), Labels: rv.WriteBack.Labels, Reviewers: rv.WriteBack.Reviewers})
	if errors.Is(err, forge.ErrForeign) {
		return nil, nil, event.ReasonForeignPullRequest, fmt.Errorf("pull request: %w; imagehook only uses pull requests from its own branch in this repository", err)
	}
	if err != nil && pr.Number == 0 {
		// The branch is pushed; the next attempt pushes it again and opens the pull request.
		return nil, nil, "", fmt.Errorf("pull request: %w", err)
	}
	var details []string
	var reason event.Reason
	if err != nil {
		details = append(details, err.Error()) // labels or reviewers refused: the pull request is open all the same
	}
	if len(pr.LookAlikes) > 0 {
		reason = event.ReasonForeignPullRequest
		details = append(details, fmt.Sprintf("left alone: %s, from another repository with imagehook's branch name %s", strings.Join(pr.LookAlikes, ", "), branch))
	}
	if p == nil || p.pr.Number != pr.Number {
		if p != nil {
			// The pull request imagehook followed is gone (closed meanwhile): its events are
			// carried by the new one.
			delete(rv.prs, p.pr.Number)
		}
		p = &proposal{}
		rv.prs[pr.Number] = p
		rv.active[branch] = pr.Number
	}
	p.pr = event.PullRequest{Number: pr.Number, URL: pr.URL, Branch: branch, State: forge.Open, Head: commit.Hash}
	p.pushed = append(p.pushed, commit.Hash)
	if rv.WriteBack.AutoMerges() && pr.State == forge.Open {
		if !p.ours(pr.Head) {
			// A commit reached the branch between the push and now: nothing is merged.
			details = append(details, "auto-merge not asked: "+s.foreignCommit(ctx, log, rv, p, pr.Head, "someone else"))
		} else if err := rv.Forge.AutoMerge(ctx, pr.Number, commit.Hash); err != nil {
			log.Warn("auto-merge not enabled", "pr", pr.Number, "err", err)
			details = append(details, "auto-merge: "+err.Error())
		}
	}
	return p, details, reason, nil
}

// foreignCommit reports a commit imagehook did not push at the end of a followed pull request's
// branch (by: who made it): once per commit, it withdraws an auto-merge and comments on the pull
// request, and records the reason on the events the pull request carries. It returns the detail.
func (s *reviews) foreignCommit(ctx context.Context, log *slog.Logger, rv *Review, p *proposal, tip, by string) string {
	number := int64(0)
	if p != nil {
		number = p.pr.Number
	}
	detail := fmt.Sprintf("branch ends in commit %s by %s, which imagehook did not push; imagehook will not force-push it away nor auto-merge it: merge or close pull request #%d (or delete the branch) and imagehook goes on",
		shortHash(tip), event.OneLine(by), number)
	if p == nil || p.foreign == tip {
		return detail
	}
	p.foreign = tip
	var notes []string
	if rv.WriteBack.AutoMerges() {
		if err := rv.Forge.CancelAutoMerge(ctx, number); err != nil {
			log.Warn("withdrawing auto-merge", "pr", number, "err", err)
			notes = append(notes, "withdrawing auto-merge failed: "+err.Error())
		} else {
			notes = append(notes, "auto-merge withdrawn")
		}
	}
	if err := rv.Forge.Comment(ctx, number, foreignComment(rv.WriteBack.Language, tip, by, rv.WriteBack.AutoMerges())); err != nil {
		log.Warn("commenting on a pull request", "pr", number, "err", err)
		notes = append(notes, "comment failed: "+err.Error())
	}
	if len(notes) > 0 {
		detail += " (" + strings.Join(notes, "; ") + ")"
	}
	log.Warn("a commit imagehook did not push is on its branch", "pr", number, "branch", p.pr.Branch, "commit", tip)
	for _, ev := range p.events {
		st, ok := ev.Step(event.StepGit)
		if !ok || st.Status != event.AwaitingMerge {
			continue
		}
		st.Reason, st.Detail = event.ReasonForeignCommit, detail
		ev.SetStep(st)
	}
	s.f.save(ctx, log, p.events)
	return detail
}

// foreignComment tells the pull request's reviewers why imagehook stopped rebuilding the branch.
// The commit's author and subject come from git (anyone's): they stay in code spans.
func foreignComment(language, tip, by string, autoMerge bool) string {
	w := prWords.In(language)
	s := fmt.Sprintf(w["foreign"], code(shortHash(tip)), code(by))
	if autoMerge {
		s += w["withdrawn"]
	}
	return s
}

// prWords are the pull requests' and their comments' words, by language.
var prWords = lang.Words{
	lang.English: {
		"foreign":   "imagehook will not rebuild this branch: it ends in commit %s (%s), which imagehook did not push, and imagehook never force-pushes a commit away. New image pushes for these targets wait until this pull request is merged or closed; on merge, imagehook checks the image of each target.",
		"withdrawn": " Auto-merge was withdrawn.",
		"title":     "imagehook: %s %s to %s",
		"titleN":    "imagehook: update %d images",
		"changes":   "Changes",
		"pushes":    "Pushes",
		"merging":   "Merging this pull request deploys the new images; imagehook follows it and reports the outcome.",
	},
	lang.Chinese: {
		"foreign":   "imagehook 不会再重建此分支：它的最新提交 %s（%s）不是 imagehook 推送的，imagehook 不会强制推送覆盖它。合并时 imagehook 会检查每个目标的镜像。",
		"withdrawn": "自动合并已撤销。",
		"title":     "imagehook：将 %s 的 %s 更新为 %s",
		"titleN":    "imagehook：更新 %d 个镜像",
		"changes":   "变更",
		"pushes":    "推送",
		"merging":   "合并此拉取请求即部署新镜像；imagehook 会跟进并报告结果。",
	},
}

// current re-reads a pull request's events from the journal and returns those still in one of
// the statuses and carried by it: the journal is shared by the replicas and outlives this
// process's memory, so an event another replica completed is never completed twice. The pull
// request's head is taken from the events, the latest record of what imagehook pushed.
func (s *reviews) current(ctx context.Context, p *proposal, statuses ...event.Status) ([]*event.Event, error) {
	var out []*event.Event
	var latest time.Time
	for _, old := range p.events {
		ev, err := s.f.journal.Get(ctx, old.ID)
		if errors.Is(err, event.ErrNotFound) {
			continue // pruned
		}
		if err != nil {
			return nil, err
		}
		st, ok := ev.Step(event.StepGit)
		if !ok || st.PR == nil || st.PR.Number != p.pr.Number || !slices.Contains(statuses, ev.Status) {
			continue
		}
		if st.PR.Head != "" && st.At.After(latest) {
			latest = st.At
			if st.PR.Head != p.pr.Head {
				p.pr.Head = st.PR.Head
				p.pushed = append(p.pushed, st.PR.Head)
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// settleCarried saves the events a pull request carried before this step; those no longer
// awaiting (their change is on the base already) are handed to the finisher.
func (s *reviews) settleCarried(ctx context.Context, log *slog.Logger, key string, carried []*event.Event) {
	if len(carried) == 0 {
		return
	}
	s.f.save(ctx, log, carried)
	var done []*event.Event
	for _, ev := range carried {
		if ev.Status != event.AwaitingMerge {
			ev.Resume()
			done = append(done, ev)
		}
	}
	if len(done) > 0 {
		s.f.q.handOver(key, done)
	}
}

// adopt takes an event found in the journal — awaiting its pull request's merge, or cancelled by
// a pull request closed unmerged (followed until the retention) — into the pull requests followed.
func (s *reviews) adopt(ev *event.Event) bool {
	key := ev.Repo()
	r, ok := s.f.repos[key]
	st, has := ev.Step(event.StepGit)
	if !ok || r.Review == nil || !has || st.PR == nil {
		return false
	}
	rv := r.Review
	rv.mu.Lock()
	defer rv.mu.Unlock()
	p := rv.prs[st.PR.Number]
	if p == nil {
		p = &proposal{pr: *st.PR}
		if st.PR.Head != "" {
			p.pushed = []string{st.PR.Head}
		}
		rv.prs[st.PR.Number] = p
	}
	p.add(ev)
	if ev.Status == event.Cancelled {
		if p.closedAt.IsZero() && !slices.ContainsFunc(p.events, func(e *event.Event) bool { return e.Status == event.AwaitingMerge }) {
			p.closedAt = st.At
		}
		return true
	}
	p.closedAt = time.Time{}
	if _, taken := rv.active[st.PR.Branch]; !taken {
		rv.active[st.PR.Branch] = st.PR.Number
	}
	s.f.q.track(ev.ID)
	return true
}

// followClosed adopts the cancelled events still in the journal (of queue key, "" for all): their
// pull requests are followed again, so that a reopen and merge completes them after a restart or
// on a new owner.
func (s *reviews) followClosed(ctx context.Context, key string) {
	if r, ok := s.f.repos[key]; len(s.reviewRepos()) == 0 || (key != "" && (!ok || r.Review == nil)) {
		return
	}
	evs, err := s.f.journal.Cancelled(ctx)
	if err != nil {
		s.f.log.Warn("reading the cancelled events whose pull requests are followed", "err", err)
		return
	}
	for _, ev := range evs {
		if key == "" || queueKey(ev) == key {
			s.adopt(ev)
		}
	}
}

// reviewRepos lists the repositories written through pull requests.
func (s *reviews) reviewRepos() []string {
	var out []string
	for key, r := range s.f.repos {
		if r.Review != nil {
			out = append(out, key)
		}
	}
	return out
}

// watch reads the repository's followed pull requests every poll interval, and at once when poked.
func (s *reviews) watch(ctx context.Context, key string, rv *Review) {
	log := s.f.log.With("repo", key)
	t := time.NewTicker(rv.WriteBack.Poll())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rv.poke:
		}
		s.checkReviews(context.WithoutCancel(ctx), log, key, rv)
	}
}

// checkReviews reads each followed pull request: a merged one completes its events from the merge
// commit once the commit is found to hold the proposed images (direct apply and notifications
// follow, as after a push); a closed one cancels them, and stays followed until the retention; a
// reopened one makes them await the merge again; an open one whose branch gained a commit
// imagehook did not push is reported. With replicas, only the repository's owner does any of it.
func (s *reviews) checkReviews(ctx context.Context, log *slog.Logger, key string, rv *Review) {
	if s.f.opts.Peers != nil && !s.f.opts.Peers.Owns(key) {
		return
	}
	// Proven in the database, not remembered: a stale owner must not complete (apply, notify) what
	// the new owner completes too.
	if s.f.opts.Peers != nil {
		if err := s.f.opts.Peers.Prove(ctx, key); err != nil {
			log.Warn("pull requests not checked: this replica could not prove it owns the queue", "err", err)
			return
		}
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for number, p := range rv.prs {
		if !p.closedAt.IsZero() && time.Since(p.closedAt) > s.f.opts.Retention {
			delete(rv.prs, number)
			continue
		}
		pr, err := rv.Forge.Get(ctx, number)
		if err != nil {
			log.Warn("reading a pull request", "pr", number, "err", err)
			continue
		}
		if pr.Fork {
			// Never one of imagehook's: its events are not completed by it, whatever it holds.
			s.forget(ctx, log, key, rv, p, fmt.Errorf("pull request #%d's head branch is not in this repository; imagehook completes only its own", number))
			continue
		}
		switch pr.State {
		case forge.Open:
			if !p.closedAt.IsZero() {
				s.reopened(ctx, log, rv, p)
			}
			if !p.ours(pr.Head) {
				s.foreignCommit(ctx, log, rv, p, pr.Head, "someone else")
			}
		case forge.Merged:
			s.merged(ctx, log, key, rv, p, pr)
		case forge.Closed:
			if p.closedAt.IsZero() {
				s.closed(ctx, log, key, rv, p)
			}
		}
	}
}

// forget stops following a pull request, failing the events it carried with err.
func (s *reviews) forget(ctx context.Context, log *slog.Logger, key string, rv *Review, p *proposal, err error) {
	evs, jerr := s.current(ctx, p, event.AwaitingMerge, event.Cancelled)
	if jerr != nil {
		log.Warn("reading a pull request's events", "pr", p.pr.Number, "err", jerr)
		return
	}
	delete(rv.prs, p.pr.Number)
	if rv.active[p.pr.Branch] == p.pr.Number {
		delete(rv.active, p.pr.Branch)
	}
	log.Error("pull request not imagehook's", "pr", p.pr.Number, "err", err, "events", eventIDs(evs))
	for _, ev := range evs {
		st, _ := ev.Step(event.StepGit)
		st.Status, st.Reason, st.Error, st.At = event.Failed, event.ReasonForeignPullRequest, err.Error(), time.Now()
		ev.SetStep(st)
		ev.Resume()
	}
	s.f.save(ctx, log, evs)
	s.f.q.handOver(key, evs)
}

// closed cancels the events of a pull request closed without merging; it stays followed.
func (s *reviews) closed(ctx context.Context, log *slog.Logger, key string, rv *Review, p *proposal) {
	evs, err := s.current(ctx, p, event.AwaitingMerge)
	if err != nil {
		log.Warn("reading a pull request's events", "pr", p.pr.Number, "err", err)
		return
	}
	p.closedAt, p.pr.State, p.events = time.Now(), forge.Closed, evs
	if rv.active[p.pr.Branch] == p.pr.Number {
		delete(rv.active, p.pr.Branch)
	}
	ref := p.pr
	for _, ev := range evs {
		st, _ := ev.Step(event.StepGit)
		st.PR, st.At, st.Status, st.Reason = &ref, p.closedAt, event.Cancelled, ""
		st.Detail = fmt.Sprintf("pull request #%d was closed without merging; reopening and merging it still completes this event", p.pr.Number)
		ev.SetStep(st)
		ev.Settle()
	}
	log.Info("pull request closed without merging", "pr", p.pr.Number, "events", eventIDs(evs))
	s.f.q.handOver(key, evs)
}

// reopened makes a reopened pull request's cancelled events await its merge again.
func (s *reviews) reopened(ctx context.Context, log *slog.Logger, rv *Review, p *proposal) {
	evs, err := s.current(ctx, p, event.Cancelled)
	if err != nil {
		log.Warn("reading a pull request's events", "pr", p.pr.Number, "err", err)
		return
	}
	p.closedAt, p.pr.State, p.events = time.Time{}, forge.Open, evs
	if _, taken := rv.active[p.pr.Branch]; !taken {
		rv.active[p.pr.Branch] = p.pr.Number
	}
	ref := p.pr
	for _, ev := range evs {
		st, _ := ev.Step(event.StepGit)
		st.PR, st.At, st.Status, st.Reason = &ref, time.Now(), event.AwaitingMerge, event.ReasonReopened
		st.Detail = fmt.Sprintf("pull request #%d was reopened; waiting for its merge", p.pr.Number)
		ev.SetStep(st)
		ev.Await()
		s.f.q.track(ev.ID)
	}
	log.Info("pull request reopened", "pr", p.pr.Number, "events", eventIDs(evs))
	s.f.save(ctx, log, evs)
}

// merged completes a merged pull request's events from the merge commit — after reading each
// target's image there: a merge that carried another image than the one proposed fails its events
// (nothing is applied to a cluster).
func (s *reviews) merged(ctx context.Context, log *slog.Logger, key string, rv *Review, p *proposal, pr forge.PullRequest) {
	evs, err := s.current(ctx, p, event.AwaitingMerge, event.Cancelled)
	if err != nil {
		log.Warn("reading a pull request's events", "pr", p.pr.Number, "err", err)
		return
	}
	other, err := s.mergedContent(ctx, key, rv, evs, pr.MergeCommit)
	if err != nil {
		// Tried again at the next poll: the merge is final, the commit will be readable.
		log.Warn("reading the merge commit", "pr", pr.Number, "commit", pr.MergeCommit, "err", err)
		return
	}
	delete(rv.prs, p.pr.Number)
	if rv.active[p.pr.Branch] == p.pr.Number {
		delete(rv.active, p.pr.Branch)
	}
	ref := p.pr
	ref.State = forge.Merged
	now := time.Now()
	var extra string
	if !p.ours(pr.Head) {
		extra = fmt.Sprintf("; the merged branch ended in commit %s, which imagehook did not push", shortHash(pr.Head))
	}
	for _, ev := range evs {
		st, _ := ev.Step(event.StepGit)
		// What the pull request's life recorded (a look-alike left alone, a reopen) stays said.
		before := ""
		if st.Reason != "" && st.Detail != "" && !(st.Reason == event.ReasonForeignCommit && extra != "") {
			before = "; " + st.Detail
		}
		st.PR, st.At, st.Commit, st.Error = &ref, now, pr.MergeCommit, ""
		if runs := other[ev.ID]; runs != "" {
			st.Status, st.Reason = event.Failed, event.ReasonMergedOtherContent
			st.Error = fmt.Sprintf("merged with other content: %s runs %s", rv.Base, runs)
			st.Detail = fmt.Sprintf("pull request #%d was merged, but not with the image imagehook proposed%s; nothing is applied to a cluster", pr.Number, extra)
		} else {
			st.Status = event.Succeeded
			st.Detail = fmt.Sprintf("merged in pull request #%d%s", pr.Number, extra)
			if extra != "" {
				st.Reason = event.ReasonForeignCommit
			} else if st.Reason == event.ReasonForeignCommit {
				st.Reason, before = "", "" // the branch ended in imagehook's commit again when merged
			}
			st.Detail += before
		}
		ev.SetStep(st)
		ev.Resume()
	}
	s.f.recordApplied(ctx, log, evs, func(t event.Target) bool { return t.Repo != "" })
	s.f.save(ctx, log, evs)
	log.Info("pull request merged", "pr", pr.Number, "commit", pr.MergeCommit, "events", eventIDs(evs), "other content", len(other))
	s.f.q.handOver(key, evs)
}

// mergedContent reads each event's targets at the merge commit, through the same rewrite that
// proposed them (the event journaled last wins each target): it returns, per event whose target
// holds another image than proposed, what the target holds ("evil/web:6.6.6").
// place names where a change was made: the same file, workload and container.
type place struct{ file, workload, container string }

func placeOf(c event.Change) place { return place{c.File, c.Workload, c.Container} }

// proposedValues is what an event's pull request wrote at each place, by its git step.
func proposedValues(ev *event.Event) map[place]string {
	out := map[place]string{}
	if st, ok := ev.Step(event.StepGit); ok {
		for _, c := range st.Changes {
			out[placeOf(c)] = c.New
		}
	}
	return out
}

func (s *reviews) mergedContent(ctx context.Context, key string, rv *Review, evs []*event.Event, commit string) (map[string]string, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if commit == "" {
		return nil, errors.New("the forge names no merge commit")
	}
	// A copy without noDowngrade: a higher version on the base is another image, not a refusal.
	plain := make([]*event.Event, len(evs))
	for i, ev := range evs {
		cp := *ev
		cp.NoDowngrade = false
		plain[i] = &cp
	}
	sort.SliceStable(plain, func(i, j int) bool { return plain[i].Seq < plain[j].Seq })
	g := planBatch(key, plain, s.f.opts, nil)
	other := map[string]string{}
	err := rv.Git.ReadAt(ctx, commit, func(fsys fs.FS) error {
		if _, _, err := g.edit(fsys); err != nil {
			return err
		}
		for _, ev := range plain {
			res := g.results[ev.ID]
			var runs []string
			switch {
			case res.err != nil:
				runs = append(runs, "a target imagehook cannot read ("+res.err.Error()+")")
			case len(res.ignored) > 0:
				for _, t := range ev.Targets {
					if t.Repo != "" && g.latest[t.Key()] == ev {
						runs = append(runs, heldImage(fsys, t, res.ignored))
					}
				}
			default:
				wrote := proposedValues(ev)
				for _, c := range res.changes {
					// The merge carries what was proposed when the value is the one the pull request
					// wrote — even where the edit would write it again otherwise (a pushed digest beside a
					// tag the manifest already names, as a re-push of that tag adds it).
					if c.Changed() && c.Old != wrote[placeOf(c)] {
						runs = append(runs, c.Old)
					}
				}
			}
			if len(runs) > 0 {
				other[ev.ID] = strings.Join(runs, ", ")
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A superseded event shares the verdict of the event that won its target.
	for _, ev := range plain {
		for _, t := range ev.Targets {
			if w := g.latest[t.Key()]; t.Repo != "" && w != ev && other[w.ID] != "" && other[ev.ID] == "" {
				other[ev.ID] = other[w.ID]
			}
		}
	}
	return other, nil
}

// heldImage is what a target the rewrite skipped (another repository, a downgrade) holds: the
// workload's image, or the rewrite's own words for values and markers.
func heldImage(fsys fs.FS, t event.Target, why []string) string {
	if t.Workload != "" && t.Values == nil && t.Marker == "" {
		if mt, err := manifests.WorkloadTarget(t.Workload, t.Namespace, t.Container); err == nil {
			if cur, err := manifests.Current(fsys, t.Path, mt, manifests.Options{}); err == nil {
				return event.OneLine(cur)
			}
		}
	}
	return event.OneLine(strings.Join(why, "; "))
}

// prTitle is the pull request's title: the change, or how many.
func prTitle(language string, evs []*event.Event, g *gitBatch) string {
	w := prWords.In(language)
	changes := prChanges(evs, g)
	if len(changes) == 1 {
		c := changes[0]
		return fmt.Sprintf(w["title"], c.Workload, c.Container, c.New)
	}
	return fmt.Sprintf(w["titleN"], len(changes))
}

// prBody lists the changes and the pushes behind them. Every value comes from a payload or the
// manifests (untrusted), so each is one line in a code span: nothing in it renders as a link,
// mention or HTML.
func prBody(language string, evs []*event.Event, g *gitBatch) string {
	var b strings.Builder
	w := prWords.In(language)
	head := [3]string{w["changes"], w["pushes"], w["merging"]}
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
				if c.Changed() {
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

// Package promote moves an image through a pipeline's stages: once the image an earlier stage
// reached passes a stage's gates (Ready there, soaked, approved, inside a change window), it
// journals a promotion event for the stage's targets, which then goes through the flow like any
// event. Gates are read from the journal on every pass, so soak expiring, a window opening or an
// approval arriving promote on their own, after a restart too; a promotion's id is derived from
// pipeline, stage and candidate, so that replicas deciding together record it once.
package promote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/window"
)

// Journal is what promotion reads and writes of the journal.
type Journal interface {
	Get(ctx context.Context, id string) (*event.Event, error)
	Current(ctx context.Context, target string) (journal.Applied, error)
	// Promotions is where approvals, holds and the notices sent are kept.
	Promotions() journal.Promotions
}

// Submitter journals an event and queues it (the updater).
type Submitter interface {
	Submit(ctx context.Context, ev *event.Event) error
}

// Options tune a Controller.
type Options struct {
	// Interval is the slow safety pass: the longest time between two passes over the gates
	// (default 10s). A pass also runs when the earliest shut gate can open (a soak ends, an allow
	// window opens, a freeze ends), when an event finishes (Poke), and after a decision or a hold
	// through this process.
	Interval time.Duration
	// NoGateTimers leaves out the wake-up at a gate's opening time: passes run on the interval
	// and on pokes only (BenchmarkPromotion's baseline).
	NoGateTimers bool
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Owns reports whether this replica works a repository (nil: all): only the owner promotes.
	Owns func(repo string) bool
	// Manifests reads stages' values in git, to hold a stage a person changed (nil: no such holds;
	// NewHolds reads it).
	Manifests Manifests
	// HoldInterval is how long what git says about a stage is trusted (default 15s; NewHolds reads
	// it); before a promotion it is always read again.
	HoldInterval time.Duration
	// Progress, when set, runs a pass whenever it delivers (the updater's Progress: events
	// finished, a queue was taken over): promotion subscribes to the flow's progress rather than
	// the flow calling into promotion.
	Progress <-chan struct{}
	// Announcer tells a stage's notifiers that it waits for approval or is held (nil: nobody).
	Announcer Announcer
	// Links signs approve and reject links for the approval requests (nil: the requests name the
	// CLI's command instead).
	Links *Links
}

// Controller decides promotions.
type Controller struct {
	pipelines []pipeline        // holds.pipelines, read once
	approvers map[string]string // name → token
	j         Journal
	store     journal.Promotions
	sub       Submitter
	log       *slog.Logger
	opts      Options
	holds     *Holds
	notices   *notices
	poke      chan struct{}
}

type pipeline struct {
	name   string
	stages []stage
}

type stage struct {
	config.Stage
	targets []event.Target
	window  *window.Window
}

// New builds a controller for the pipelines of holds (built first, with the same journal: the
// updater, which is sub, asks it too). cfg gives the approvers.
func New(cfg *config.Config, holds *Holds, sub Submitter, log *slog.Logger, opts Options) *Controller {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	store := holds.j.Promotions()
	c := &Controller{pipelines: holds.pipelines, approvers: map[string]string{}, j: holds.j, store: store, sub: sub, log: log, opts: opts,
		holds: holds, poke: make(chan struct{}, 1),
		notices: &notices{j: holds.j, store: store, announcer: opts.Announcer, links: opts.Links, now: opts.Now, log: log}}
	for _, a := range cfg.Approvers {
		c.approvers[a.Name] = a.Token
	}
	return c
}

// Run passes over the gates until ctx ends: when the earliest shut gate can open, when poked or
// told of progress, and at least every interval.
func (c *Controller) Run(ctx context.Context) {
	for {
		wait := c.opts.Interval
		if next := c.Pass(ctx); !next.IsZero() && !c.opts.NoGateTimers {
			// A floor keeps a gate that says it opens now but is still shut (a clock a hair
			// behind the journal's) from spinning the loop.
			wait = min(wait, max(next.Sub(c.opts.Now()), minWait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.poke:
			t.Stop()
		case <-c.opts.Progress:
			t.Stop()
		}
	}
}

// minWait is the shortest wait between two passes woken by a gate's opening time.
const minWait = 5 * time.Millisecond

// Poke makes the next pass run now: a decision or a hold was recorded. (Events finishing and
// queues taken over arrive through Options.Progress.) It never blocks.
func (c *Controller) Poke() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Pass evaluates every stage, tells of holds and requests for approval, and promotes where every
// gate is open. A stage that cannot be read is logged and tried again on the next pass. It returns
// the earliest time a shut gate of a stage this replica works can open (zero: none has a time —
// an approval, a stage not Ready yet, or nothing waits).
func (c *Controller) Pass(ctx context.Context) time.Time {
	var next time.Time
	for _, p := range c.pipelines {
		for i := range p.stages {
			s := &p.stages[i]
			if !c.owns(s) {
				continue
			}
			v, err := c.evaluate(ctx, p, s)
			if err != nil {
				c.log.Warn("promotion gates not read; trying again", "pipeline", p.name, "stage", s.Name, "err", err)
				continue
			}
			if s.After == "" || !v.ready() {
				// An entry stage is never promoted into, but a person's change to it is noticed
				// like any stage's.
				c.notices.announce(ctx, p, s, v)
				next = earliest(next, v.Gates)
				continue
			}
			// What git holds is read again now: a person's change since the last read holds it.
			if v, err = c.evaluateAt(ctx, p, s, 0); err != nil {
				c.log.Warn("promotion gates not read; trying again", "pipeline", p.name, "stage", s.Name, "err", err)
				continue
			}
			if v.ready() {
				c.promote(ctx, p, s, v)
			}
		}
	}
	return next
}

// earliest is the sooner of next and the opening time of each shut gate that has one.
func earliest(next time.Time, gates []Gate) time.Time {
	for _, g := range gates {
		if !g.Open && !g.Opens.IsZero() && (next.IsZero() || g.Opens.Before(next)) {
			next = g.Opens
		}
	}
	return next
}

func (c *Controller) owns(s *stage) bool {
	if c.opts.Owns == nil {
		return true
	}
	for _, t := range s.targets {
		if t.Repo != "" {
			return c.opts.Owns(t.Repo)
		}
	}
	return c.opts.Owns("")
}

// Reason says why a gate is shut, or what a stage is doing; code reads it, people read Detail.
type Reason string

// Reasons of the pipeline view.
const (
	ReasonOpen             Reason = ""
	ReasonNoCandidate      Reason = "no candidate"
	ReasonCurrent          Reason = "current"
	ReasonPromoting        Reason = "promoting"
	ReasonPromotionFailed  Reason = "promotion failed"
	ReasonNotReady         Reason = "not ready"
	ReasonSoaking          Reason = "soaking"
	ReasonAwaitingApproval Reason = "awaiting approval"
	ReasonRejected         Reason = "rejected"
	ReasonWindow           Reason = "window shut"
)

// Gate is one gate's state.
type Gate struct {
	Gate   string    `json:"gate"`
	Open   bool      `json:"open"`
	Reason Reason    `json:"reason,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Opens  time.Time `json:"opens,omitzero"`
}

// Candidate is the image a stage would be promoted to: what the stage before reached.
type Candidate struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	// Event is the earlier stage's event that reached it.
	Event string `json:"event"`
	// Since is when it became eligible: Ready there with ready: true, else when its event succeeded.
	Since      time.Time `json:"since,omitzero"`
	ApprovedBy []string  `json:"approvedBy,omitempty"`
}

// Key is what approvals are bound to: the digest, or the reference when the image has none.
func (c *Candidate) Key() string {
	if c.Digest != "" {
		return c.Digest
	}
	return c.Image
}

// StageView is one stage as the API and the page show it.
type StageView struct {
	Name  string `json:"name"`
	After string `json:"after,omitempty"`
	// Image is what the stage runs by imagehook's journal, Event the event that wrote it.
	Image   string    `json:"image,omitempty"`
	Event   string    `json:"event,omitempty"`
	ReadyAt time.Time `json:"readyAt,omitzero"`
	// Candidate and Gates are set for a stage that follows another.
	Candidate *Candidate `json:"candidate,omitempty"`
	Gates     []Gate     `json:"gates,omitempty"`
	// State says what the stage waits on: a gate's reason, current, promoting.
	State  Reason `json:"state,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Promotion is the promotion event for the candidate, once journaled.
	Promotion string `json:"promotion,omitempty"`
	// Held is set while the stage is held.
	Held *Held `json:"held,omitempty"`
	// promotionID is the id a promotion of the candidate gets.
	promotionID string
}

// ready reports whether the stage should be promoted now: a candidate, every gate open, and no
// promotion of it journaled.
func (v *StageView) ready() bool { return v.Candidate != nil && v.State == ReasonOpen }

// PipelineView is a pipeline's stages in config order.
type PipelineView struct {
	Name   string      `json:"name"`
	Stages []StageView `json:"stages"`
}

// ErrUnknown is returned for a pipeline or stage that is not configured.
var ErrUnknown = errors.New("no such pipeline or stage")

// View returns the named pipeline's state.
func (c *Controller) View(ctx context.Context, name string) (PipelineView, error) {
	for _, p := range c.pipelines {
		if p.name != name {
			continue
		}
		pv := PipelineView{Name: p.name}
		for i := range p.stages {
			v, err := c.evaluate(ctx, p, &p.stages[i])
			if err != nil {
				return PipelineView{}, err
			}
			pv.Stages = append(pv.Stages, v)
		}
		return pv, nil
	}
	return PipelineView{}, fmt.Errorf("pipeline %q: %w", name, ErrUnknown)
}

// Views returns every pipeline's state.
func (c *Controller) Views(ctx context.Context) ([]PipelineView, error) {
	var out []PipelineView
	for _, p := range c.pipelines {
		v, err := c.View(ctx, p.name)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// running returns the event that last wrote the stage's first target, or nil.
func (h *Holds) running(ctx context.Context, s *stage) (*event.Event, error) {
	if len(s.targets) == 0 {
		return nil, nil
	}
	a, err := h.j.Current(ctx, s.targets[0].Key())
	if err != nil {
		return nil, fmt.Errorf("what stage %s runs: %w", s.Name, err)
	}
	if a.Event == "" {
		return nil, nil
	}
	ev, err := h.j.Get(ctx, a.Event)
	if errors.Is(err, event.ErrNotFound) {
		return nil, nil // pruned by retention: nothing to promote from
	}
	if err != nil {
		return nil, fmt.Errorf("what stage %s runs: %w", s.Name, err)
	}
	return ev, nil
}

// evaluate reads a stage's state and, for a stage that follows another, its gates.
func (c *Controller) evaluate(ctx context.Context, p pipeline, s *stage) (StageView, error) {
	return c.evaluateAt(ctx, p, s, c.holds.interval)
}

// evaluateAt is evaluate trusting what git said about a stage for maxAge.
func (c *Controller) evaluateAt(ctx context.Context, p pipeline, s *stage, maxAge time.Duration) (StageView, error) {
	v := StageView{Name: s.Name, After: s.After}
	cur, err := c.holds.running(ctx, s)
	if err != nil {
		return v, err
	}
	if cur != nil {
		v.Image, v.Event, v.ReadyAt = written(cur), cur.ID, readyAt(cur)
	}
	held, released, err := c.holds.finder.held(ctx, p, s, cur, maxAge)
	if err != nil {
		return v, err
	}
	if held != nil {
		v.Held, v.State, v.Detail = held, ReasonHeld, held.Detail
		if held.Image != "" {
			v.Image = held.Image
		}
	}
	if s.After == "" {
		return v, nil
	}
	prev := p.stage(s.After)
	from, err := c.holds.running(ctx, prev)
	if err != nil {
		return v, err
	}
	prevHeld, _, err := c.holds.finder.held(ctx, p, prev, from, maxAge)
	if err != nil {
		return v, err
	}
	cand := candidate(from, s.Gates.Ready)
	switch {
	case held != nil:
		v.Candidate = cand
		return v, nil
	case prevHeld != nil:
		v.State, v.Detail = ReasonNoCandidate, "stage "+prev.Name+" is held ("+prevHeld.Detail+")"
		return v, nil
	case from == nil:
		v.State, v.Detail = ReasonNoCandidate, "stage "+prev.Name+" runs nothing imagehook wrote yet"
		return v, nil
	case cand == nil:
		v.State, v.Detail = ReasonNoCandidate, "the event stage "+prev.Name+" runs, "+from.ID+", is "+string(from.Status)
		return v, nil
	}
	v.Candidate = cand
	// A released change by someone else: the stage runs their value, and the candidate is
	// promoted again over it (a new promotion: the id names the released commit).
	if cur != nil && released == "" && sameImage(cur, cand) {
		v.State, v.Detail = ReasonCurrent, "runs the candidate"
		return v, nil
	}
	return c.promotionState(ctx, p, s, v, from, cand, released)
}

// promotionState finishes v for a stage with a candidate it does not run yet: the promotion
// already journaled for that candidate says where it stands, or else the first shut gate does.
func (c *Controller) promotionState(ctx context.Context, p pipeline, s *stage, v StageView, from *event.Event, cand *Candidate, released string) (StageView, error) {
	id := promotionID(p.name, s.Name, cand, released)
	v.promotionID = id
	pe, err := c.j.Get(ctx, id)
	if err == nil {
		v.Promotion = id
		switch {
		case pe.Status == event.Failed:
			v.State, v.Detail = ReasonPromotionFailed, "promotion "+id+" failed: "+pe.Error
		case pe.Status.Done():
			v.State, v.Detail = ReasonCurrent, "promoted by "+id
		default:
			v.State, v.Detail = ReasonPromoting, "promotion "+id+" is "+string(pe.Status)
		}
		return v, nil
	}
	if !errors.Is(err, event.ErrNotFound) {
		return v, fmt.Errorf("promotion %s: %w", id, err)
	}
	now := c.opts.Now()
	v.Gates, err = c.gates(ctx, p, s, from, cand, now)
	if err != nil {
		return v, err
	}
	for _, g := range v.Gates {
		if !g.Open {
			v.State, v.Detail = g.Reason, g.Detail
			break
		}
	}
	return v, nil
}

func (c *Controller) gates(ctx context.Context, p pipeline, s *stage, from *event.Event, cand *Candidate, now time.Time) ([]Gate, error) {
	var gs []Gate
	g := s.Gates
	if g.Ready {
		if cand.Since.IsZero() {
			gs = append(gs, Gate{Gate: "ready", Reason: ReasonNotReady, Detail: "ready: stage " + s.After + " does not run it Ready yet"})
		} else {
			gs = append(gs, Gate{Gate: "ready", Open: true, Detail: "ready since " + cand.Since.UTC().Format(time.RFC3339)})
		}
	}
	if soak := time.Duration(g.Soak); soak > 0 {
		switch left := soak - now.Sub(cand.Since); {
		case cand.Since.IsZero():
			gs = append(gs, Gate{Gate: "soak", Reason: ReasonSoaking, Detail: "soak: starts once it is Ready"})
		case left > 0:
			gs = append(gs, Gate{Gate: "soak", Reason: ReasonSoaking, Detail: "soak: " + left.Round(time.Second).String() + " left", Opens: cand.Since.Add(soak)})
		default:
			gs = append(gs, Gate{Gate: "soak", Open: true, Detail: "soaked " + soak.String()})
		}
	}
	if a := g.Approval; a != nil && a.PullRequest {
		gs = append(gs, approvalGate(a, nil, cand))
	} else if a != nil {
		ds, err := c.store.DecisionsFor(ctx, p.name, s.Name, cand.Key())
		if err != nil {
			return nil, err
		}
		gs = append(gs, approvalGate(a, ds, cand))
	}
	if s.window != nil {
		w := s.window.At(now)
		if w.IsOpen() {
			gs = append(gs, Gate{Gate: "window", Open: true})
		} else {
			gs = append(gs, Gate{Gate: "window", Reason: ReasonWindow, Detail: string(w.Reason) + ": " + w.Detail, Opens: w.Next})
		}
	}
	return gs, nil
}

// approvalGate counts distinct listed approvers who approved the candidate; one listed approver's
// rejection shuts the gate until they approve.
func approvalGate(a *config.Approval, ds []journal.Decision, cand *Candidate) Gate {
	if a.PullRequest {
		return Gate{Gate: "approval", Open: true, Detail: "approval: whoever merges the promotion's pull request"}
	}
	var approved, rejected []string
	for _, d := range ds {
		if !slices.Contains(a.Approvers, d.Approver) {
			continue
		}
		if d.Approve {
			approved = append(approved, d.Approver)
		} else {
			rejected = append(rejected, d.Approver)
		}
	}
	cand.ApprovedBy = approved
	switch {
	case len(rejected) > 0:
		return Gate{Gate: "approval", Reason: ReasonRejected, Detail: "approval: rejected by " + strings.Join(rejected, ", ")}
	case len(approved) < a.Count:
		return Gate{Gate: "approval", Reason: ReasonAwaitingApproval, Detail: fmt.Sprintf("approval: %d of %d", len(approved), a.Count)}
	}
	return Gate{Gate: "approval", Open: true, Detail: "approved by " + strings.Join(approved, ", ")}
}

func (p pipeline) stage(name string) *stage {
	for i := range p.stages {
		if p.stages[i].Name == name {
			return &p.stages[i]
		}
	}
	return nil
}

// candidate is what an earlier stage's event offers the next: nothing until it succeeded (and, when
// the next stage asks for ready, until its deploy or rollout is Ready).
func candidate(ev *event.Event, needReady bool) *Candidate {
	if ev == nil || ev.Status != event.Succeeded && !(needReady && ev.Status == event.Running) {
		return nil
	}
	ref := written(ev)
	img, digest := splitDigest(ref)
	if digest == "" {
		digest = ev.Push.Digest
	}
	c := &Candidate{Image: img, Digest: digest, Event: ev.ID}
	if needReady {
		c.Since = readyAt(ev)
	} else {
		c.Since = ev.UpdatedAt
	}
	return c
}

// written is the image reference an event wrote: the new value of its first change, else its
// push. A Helm values file or marked scalars keep a reference in parts (a tag alone, a repository
// alone), so for such a target it is the push, which the parts were written from.
func written(ev *event.Event) string {
	if writtenFromPush(ev) {
		return ev.Push.Ref()
	}
	for _, s := range ev.Steps {
		for _, ch := range s.Changes {
			if ch.New != "" {
				return ch.New
			}
		}
	}
	return ev.Push.Ref()
}

// writtenFromPush reports whether what the event wrote is read from its push rather than its
// changes: its first target keeps the reference in parts.
func writtenFromPush(ev *event.Event) bool {
	return len(ev.Targets) > 0 && (ev.Targets[0].Values != nil || ev.Targets[0].Marker != "")
}

// splitDigest returns host/repo:tag and the digest of ref.
func splitDigest(ref string) (string, string) {
	if img, d, ok := strings.Cut(ref, "@"); ok {
		return img, d
	}
	return ref, ""
}

// readyAt is when the event's change ran Ready: its deploy step, or a direct apply that waited for
// the rollout. Zero when neither says so.
func readyAt(ev *event.Event) time.Time {
	if st, ok := ev.Step(event.StepDeploy); ok && st.Status == event.Succeeded && !st.ReadyAt.IsZero() {
		return st.ReadyAt
	}
	if st, ok := ev.Step(event.StepApply); ok && st.Status == event.Succeeded && slices.ContainsFunc(ev.Targets, func(t event.Target) bool { return t.WaitRollout > 0 }) {
		return st.At
	}
	return time.Time{}
}

// sameImage reports whether the stage's event wrote the candidate (by digest when both have one).
func sameImage(ev *event.Event, c *Candidate) bool {
	if ev.PromotedFrom != nil && ev.PromotedFrom.Event == c.Event {
		return true
	}
	img, digest := splitDigest(written(ev))
	if digest == "" {
		digest = ev.Push.Digest
	}
	if c.Digest != "" && digest != "" {
		return c.Digest == digest
	}
	return sameRef(img, c.Image)
}

// promotionID derives a promotion's id from what it promotes where, and over which released
// change of someone else's, so that each is journaled once.
func promotionID(pipeline, stage string, c *Candidate, over string) string {
	return event.DerivedID("promotion", pipeline, stage, c.Event, c.Key(), over)
}

// promote journals the promotion event of a stage whose gates are all open.
func (c *Controller) promote(ctx context.Context, p pipeline, s *stage, v StageView) {
	cand := v.Candidate
	from, err := c.j.Get(ctx, cand.Event)
	if err != nil {
		c.log.Warn("promotion source not read; trying again", "pipeline", p.name, "stage", s.Name, "event", cand.Event, "err", err)
		return
	}
	now := c.opts.Now().UTC()
	id := v.promotionID
	image := cand.Image
	if ref, err := imageref.Parse(cand.Image); err == nil && ref.Tag == "" {
		image = from.Push.Image // a digest-only value: keep the pushed tag beside it
	}
	// The image is the value the stage before holds, host included, unless it was read from a
	// push that named no host (a Docker Hub push into a values file): the rewrite keeps the
	// file's host then, as it did there.
	ev := &event.Event{
		ID:   id,
		Hook: from.Hook,
		Push: event.Push{Image: image, Digest: cand.Digest, Pusher: "imagehook", PushedAt: now,
			ExplicitHost: from.Push.ExplicitHost || !writtenFromPush(from), Source: event.SourcePromotion},
		NoDowngrade: from.NoDowngrade,
		Delivery:    id,
		Targets:     s.targets,
		Mail:        from.Mail,
		Notify:      union(from.Notify, s.Notify),
		ReceivedAt:  now,
		PromotedFrom: &event.PromotedFrom{Pipeline: p.name, Stage: s.After, Event: from.ID, Into: s.Name,
			ApprovedBy: cand.ApprovedBy},
	}
	if cand.Digest != "" {
		ev.Pin = "digest" // the same digest moves, whatever the tag names by now
	}
	switch err := c.sub.Submit(ctx, ev); {
	case errors.Is(err, event.ErrDuplicateDelivery):
		// Another replica journaled it first: it is recorded once.
	case err != nil:
		c.log.Warn("promotion not journaled; trying again", "pipeline", p.name, "stage", s.Name, "err", err)
	default:
		c.log.Info("promoted", "pipeline", p.name, "stage", s.Name, "from", s.After, "image", ev.Push.Ref(), "event", id, "source", from.ID)
	}
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

package promote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/journal"
)

// Manifests reads what git holds for a stage, so that a person's change to it is seen.
type Manifests interface {
	// Current returns the target's image value at the tip of its branch (fetched first).
	Current(ctx context.Context, t event.Target) (string, error)
	// LastChange names the newest commit that changed file in repo, as the last fetch left it, and
	// whether imagehook committed it.
	LastChange(ctx context.Context, repo, file string) (c gitops.LogCommit, found, ours bool, err error)
}

// Held says why a stage is held: promotions into it stop, and it offers no candidate to the
// stages after it, until it is released.
type Held struct {
	// Commit is the commit that changed the stage's value outside imagehook ("" for a hold a person
	// set through the API).
	Commit string    `json:"commit,omitempty"`
	By     string    `json:"by"`
	Image  string    `json:"image,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Detail string    `json:"detail"`
}

// ReasonHeld is the state of a held stage.
const ReasonHeld Reason = "held"

// Holds knows the configured pipelines and whether their stages are held. It is its own value,
// built before the updater and the Controller, because both need it and the Controller needs the
// updater: the updater asks it at admission (HeldForPushes, as updater.Options.Held), so that a
// strict hold is in force before the first event is admitted, and reconcile asks it before it
// submits (Held).
type Holds struct {
	pipelines []pipeline
	j         Journal
	finder    *holdFinder
	// interval is how long what git says about a stage is trusted (Options.HoldInterval).
	interval time.Duration
	log      *slog.Logger
}

// NewHolds reads the configured pipelines; of opts it uses Manifests and HoldInterval.
func NewHolds(cfg *config.Config, j Journal, log *slog.Logger, opts Options) (*Holds, error) {
	if opts.HoldInterval <= 0 {
		opts.HoldInterval = 15 * time.Second
	}
	pipelines, err := readPipelines(cfg)
	if err != nil {
		return nil, err
	}
	return &Holds{pipelines: pipelines, j: j, finder: &holdFinder{store: j.Promotions(), manifests: opts.Manifests},
		interval: opts.HoldInterval, log: log}, nil
}

// readPipelines turns the configured pipelines into their stages, with targets and windows.
func readPipelines(cfg *config.Config) ([]pipeline, error) {
	var out []pipeline
	for _, p := range cfg.Pipelines {
		pl := pipeline{name: p.Name}
		for _, s := range p.Stages {
			st := stage{Stage: s}
			for _, t := range s.Targets {
				st.targets = append(st.targets, t.Event())
			}
			if w := s.Gates.Windows; w != nil {
				win, err := w.Window()
				if err != nil {
					return nil, fmt.Errorf("pipelines[%s].stages[%s].gates.windows: %w", p.Name, s.Name, err)
				}
				st.window = win
			}
			pl.stages = append(pl.stages, st)
		}
		out = append(out, pl)
	}
	return out, nil
}

// holdFinder finds a stage's holds: those set through the API, in the journal, and the changes of
// its value in git by someone else.
type holdFinder struct {
	store     journal.Promotions
	manifests Manifests
	cache     holdCache
}

// holdCache keeps what git said about each stage for a while: reading it fetches.
type holdCache struct {
	mu sync.Mutex
	m  map[string]gitValue
}

type gitValue struct {
	// event is what imagehook last wrote there when git was read: a newer write reads git again.
	event  string
	at     time.Time
	image  string
	commit gitops.LogCommit
	found  bool
	ours   bool
}

// held returns the stage's hold, or nil. A hold set through the API comes from the journal; a
// change of the stage's value by someone else is found by comparing git with what imagehook last
// wrote there (cur), read at most every HoldInterval (maxAge 0: read now).
func (c *holdFinder) held(ctx context.Context, p pipeline, s *stage, cur *event.Event, maxAge time.Duration) (*Held, string, error) {
	holds, err := c.store.HoldsFor(ctx, p.name, s.Name)
	if err != nil {
		return nil, "", err
	}
	for _, h := range holds {
		if h.Commit == "" && !h.Released {
			return &Held{By: h.By, At: h.At, Detail: "held by " + h.By + " " + h.At.Format(time.RFC3339) + commentSuffix(h.Comment)}, "", nil
		}
	}
	if c.manifests == nil || cur == nil {
		return nil, "", nil
	}
	t, ok := gitTarget(s)
	if !ok {
		return nil, "", nil
	}
	gv, err := c.gitValue(ctx, p, s, t, cur, maxAge)
	if err != nil {
		return nil, "", err
	}
	if wrote(gv.image, cur) {
		return nil, "", nil
	}
	if gv.found && gv.ours {
		// imagehook's own commit, journaled as applied a moment later (or another hook's event for
		// the same workload): not a person's change.
		return nil, "", nil
	}
	if !gv.found {
		// Changed by a commit older than the history read: still not imagehook's value.
		img := event.OneLine(gv.image) // a person's value: shown in pages, mail and chat as one line
		return &Held{Image: img, By: "someone", Detail: "held: the value is " + img + ", not what imagehook wrote"}, "", nil
	}
	if slices.ContainsFunc(holds, func(h journal.Hold) bool { return h.Commit == gv.commit.Hash && h.Released }) {
		return nil, gv.commit.Hash, nil // released: the next promotion may overwrite it
	}
	short := gv.commit.Hash[:min(7, len(gv.commit.Hash))]
	// The author and the value are a person's: shown in pages, mail and chat as one line.
	by, img := event.OneLine(gv.commit.Author.Name), event.OneLine(gv.image)
	return &Held{Commit: gv.commit.Hash, By: by, Image: img, At: gv.commit.When,
		Detail: "held: " + short + " by " + by + " set " + img}, "", nil
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

func (c *holdFinder) gitValue(ctx context.Context, p pipeline, s *stage, t event.Target, cur *event.Event, maxAge time.Duration) (gitValue, error) {
	key := p.name + "\x00" + s.Name
	c.cache.mu.Lock()
	gv, ok := c.cache.m[key]
	c.cache.mu.Unlock()
	now := time.Now()
	if ok && maxAge > 0 && now.Sub(gv.at) < maxAge && gv.event == cur.ID {
		return gv, nil
	}
	img, err := c.manifests.Current(ctx, t)
	if err != nil {
		return gitValue{}, fmt.Errorf("stage %s's value in git: %w", s.Name, err)
	}
	gv = gitValue{event: cur.ID, at: now, image: img}
	if st, ok := cur.Step(event.StepGit); ok && len(st.Files) > 0 && !wrote(img, cur) {
		gv.commit, gv.found, gv.ours, err = c.manifests.LastChange(ctx, t.Repo, st.Files[0])
		if err != nil {
			return gitValue{}, fmt.Errorf("who changed stage %s: %w", s.Name, err)
		}
	}
	c.cache.mu.Lock()
	if c.cache.m == nil {
		c.cache.m = map[string]gitValue{}
	}
	c.cache.m[key] = gv
	c.cache.mu.Unlock()
	return gv, nil
}

// gitTarget is the stage target whose value git is read for: the first in a repository, of any
// kind of place (a workload container, a Helm values file, marked scalars).
func gitTarget(s *stage) (event.Target, bool) {
	for _, t := range s.targets {
		if t.Repo != "" && (t.Values != nil || t.Marker != "" || t.Workload != "" && t.Container != "") {
			return t, true
		}
	}
	return event.Target{}, false
}

// wrote reports whether git's value is what the event wrote there: the same reference, or the
// same repository path and tag with the same digest or none on one side (a values file without a
// digest key keeps the tag alone). Hosts are not compared there: a registry alias writes another.
func wrote(git string, ev *event.Event) bool {
	w := written(ev)
	if sameRef(git, w) {
		return true
	}
	g, errG := imageref.Parse(git)
	e, errE := imageref.Parse(w)
	if errG != nil || errE != nil || g.Path() != e.Path() || g.Tag != e.Tag {
		return false
	}
	return g.Digest == e.Digest || g.Digest == "" || e.Digest == ""
}

// sameRef compares two image references as references (a default host or tag spelled out or not).
func sameRef(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := imageref.Parse(a)
	rb, errB := imageref.Parse(b)
	return errA == nil && errB == nil && ra.String() == rb.String()
}

// ErrNotAllowed is returned when who asks may not hold or release the stage.
var ErrNotAllowed = errors.New("not allowed to hold or release this stage")

// SetHold holds a stage (hold) or releases it (release: the manual hold, and the commit that
// changed its value, if any). who is an admin ("admin") or an approver of the stage.
func (c *Controller) SetHold(ctx context.Context, pipelineName, stageName, who string, hold bool, comment string) (StageView, error) {
	i := slices.IndexFunc(c.pipelines, func(p pipeline) bool { return p.name == pipelineName })
	if i < 0 {
		return StageView{}, fmt.Errorf("pipeline %q: %w", pipelineName, ErrUnknown)
	}
	p := c.pipelines[i]
	s := p.stage(stageName)
	if s == nil {
		return StageView{}, fmt.Errorf("stage %q: %w", stageName, ErrUnknown)
	}
	if who != "admin" && (s.Gates.Approval == nil || !slices.Contains(s.Gates.Approval.Approvers, who)) {
		return StageView{}, ErrNotAllowed
	}
	now := c.opts.Now().UTC()
	comment = oneLineComment(comment)
	if err := c.store.SetHold(ctx, journal.Hold{Pipeline: p.name, Stage: s.Name, By: who, Comment: comment, At: now, Released: !hold}); err != nil {
		return StageView{}, err
	}
	if !hold {
		cur, err := c.holds.running(ctx, s)
		if err != nil {
			return StageView{}, err
		}
		if h, _, err := c.holds.finder.held(ctx, p, s, cur, 0); err == nil && h != nil && h.Commit != "" {
			if err := c.store.SetHold(ctx, journal.Hold{Pipeline: p.name, Stage: s.Name, Commit: h.Commit, By: who, Comment: comment, At: now, Released: true}); err != nil {
				return StageView{}, err
			}
		}
	}
	verb := "held"
	if !hold {
		verb = "released"
	}
	c.log.Info("stage "+verb, "pipeline", p.name, "stage", s.Name, "by", who)
	c.Poke()
	return c.evaluate(ctx, p, s)
}

// Held reports whether the stage that holds target is held, and why: reconcile asks it before
// submitting a newer tag, so that a person's rollback is not undone by polling either. A stage
// whose state cannot be read counts as held (said in the log): submitting could undo a change.
func (h *Holds) Held(ctx context.Context, target event.Target) (bool, string) {
	p, s := stageOf(h.pipelines, target)
	if s == nil {
		return false, ""
	}
	return h.heldNow(ctx, p, s, h.interval)
}

// HeldForPushes reports whether a hook's push to target must not be applied, and why: its stage
// sets hold: strict and is held. Without strict, a held entry stage takes pushes (a new build is a
// deliberate new version). What git holds is read now, so that a person's change just before the
// push is seen; a stage that cannot be read counts as held.
func (h *Holds) HeldForPushes(ctx context.Context, target event.Target) (bool, string) {
	p, s := stageOf(h.pipelines, target)
	if s == nil || s.Hold != config.HoldStrict {
		return false, ""
	}
	return h.heldNow(ctx, p, s, 0)
}

// stageOf returns the stage of pipelines that holds target, or nil.
func stageOf(pipelines []pipeline, target event.Target) (pipeline, *stage) {
	key := target.Key()
	for _, p := range pipelines {
		for i := range p.stages {
			s := &p.stages[i]
			if slices.ContainsFunc(s.targets, func(t event.Target) bool { return t.Key() == key }) {
				return p, s
			}
		}
	}
	return pipeline{}, nil
}

// heldNow is whether the stage is held, trusting git's answer for maxAge; unread counts as held.
func (h *Holds) heldNow(ctx context.Context, p pipeline, s *stage, maxAge time.Duration) (bool, string) {
	cur, err := h.running(ctx, s)
	if err == nil {
		var held *Held
		if held, _, err = h.finder.held(ctx, p, s, cur, maxAge); err == nil {
			if held == nil {
				return false, ""
			}
			return true, held.Detail
		}
	}
	h.log.Warn("stage not read; counted as held", "pipeline", p.name, "stage", s.Name, "err", err)
	return true, "stage " + s.Name + " could not be read"
}

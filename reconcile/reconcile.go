// Package reconcile catches the webhooks that never came: every interval it asks the registry for
// the tags of the image each target runs, applies the hook's tag policy, and when the newest allowed
// semantic version is newer than what git holds, submits an event (source "reconcile") through the
// same journal a webhook goes through. It never downgrades.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/intake"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/tagpolicy"
)

// Source names the events reconcile submits.
const Source = "reconcile"

// Repo reads a manifests repository's tip.
type Repo interface {
	Read(ctx context.Context, fn func(fs.FS) error) error
}

// Lister lists a repository's tags in its registry.
type Lister interface {
	Tags(ctx context.Context, repository string) ([]string, error)
}

// Submitter journals an event (the updater).
type Submitter interface {
	Submit(ctx context.Context, ev *event.Event) error
}

// Reconciler polls for the hooks that ask for it.
type Reconciler struct {
	hooks  []config.Hook
	repos  map[string]Repo
	tags   Lister
	submit Submitter
	log    *slog.Logger
	runs   *prometheus.CounterVec
	events prometheus.Counter
	// submitted remembers the last tag submitted per target, so that a slow git step is not asked
	// twice for the same push.
	submitted map[string]string
	opts      Options
}

// Options are the reconciler's optional collaborators.
type Options struct {
	// Owns, when set, limits the reconciler to the repositories this replica works: with several
	// replicas, only one asks the registry about a target.
	Owns func(repo string) bool
	// Held, when set, says whether a target is held (a person changed it in git; promotion's
	// holds): reconcile never submits a version for a held target, or it would undo their change.
	Held func(ctx context.Context, t event.Target) (bool, string)
}

// New returns a reconciler for the hooks with a reconcile interval; reg receives its metrics.
func New(hooks []config.Hook, repos map[string]Repo, tags Lister, submit Submitter, reg prometheus.Registerer, log *slog.Logger, opts Options) *Reconciler {
	r := &Reconciler{repos: repos, tags: tags, submit: submit, log: log, submitted: map[string]string{}, opts: opts,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagehook_reconcile_runs_total",
			Help: "Reconcile passes by hook and outcome (ok, error)."}, []string{"hook", "outcome"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "imagehook_reconcile_events_total",
			Help: "Events submitted by reconcile for pushes whose webhook never came."})}
	for _, h := range hooks {
		if h.Reconcile != nil {
			r.hooks = append(r.hooks, h)
		}
	}
	if reg != nil {
		reg.MustRegister(r.runs, r.events)
	}
	return r
}

// Run polls every hook at its interval (the first pass at once) until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	if len(r.hooks) == 0 {
		return
	}
	next := make([]time.Time, len(r.hooks))
	for {
		now := time.Now()
		wait := time.Hour
		for i, h := range r.hooks {
			if !now.Before(next[i]) {
				r.pass(ctx, h)
				next[i] = time.Now().Add(time.Duration(h.Reconcile.Interval))
			}
			wait = min(wait, time.Until(next[i]))
		}
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Pass reconciles every hook once, now, and returns what failed (each error names its hook):
// for a dry run such as import's --check.
func (r *Reconciler) Pass(ctx context.Context) error {
	var errs []error
	for _, h := range r.hooks {
		if err := r.pass(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("hooks[%s]: %w", h.ID, err))
		}
	}
	return errors.Join(errs...)
}

// pass reconciles every target of one hook.
func (r *Reconciler) pass(ctx context.Context, h config.Hook) error {
	outcome := "ok"
	var errs []error
	for _, t := range h.Targets {
		if err := r.target(ctx, h, t); err != nil {
			outcome = "error"
			errs = append(errs, err)
			// A registry config does not list, or a tag list past its caps, says so by its reason.
			r.log.Warn("reconcile", "hook", h.ID, "workload", t.Workload, "marker", t.Marker, "reason", event.ReasonOf(err), "err", err)
		}
	}
	r.runs.WithLabelValues(h.ID, outcome).Inc()
	return errors.Join(errs...)
}

func (r *Reconciler) target(ctx context.Context, h config.Hook, t config.Target) error {
	repo := r.repos[t.Repo]
	if r.opts.Owns != nil && !r.opts.Owns(t.Repo) {
		return nil
	}
	if repo == nil {
		return nil
	}
	policy, err := tagpolicy.Parse(h.Tags)
	if err != nil {
		return err
	}
	order := tagpolicy.OrderOf(h.Tags)
	var image, curTag string
	anyVersion := false
	switch {
	case t.Marker != "":
		if image, curTag, err = currentMarked(ctx, repo, t, h.Reconcile.Image); err != nil {
			return err
		}
		// A marked value that is not a version yet (latest) takes the newest allowed, as Fleet's
		// imagescan writes whatever its policy chooses.
		anyVersion = true
	case t.Workload != "" && t.Container != "":
		current, err := CurrentImage(ctx, repo, t.Event())
		if err != nil {
			return fmt.Errorf("current image: %w", err)
		}
		cur, err := imageref.Parse(current)
		if err != nil {
			return err
		}
		image, curTag = cur.Repo, cur.Tag
	default:
		return nil // only workload containers named in full, and markers, can be asked about
	}
	if order == tagpolicy.BySemver && !anyVersion {
		if _, err := semver.NewVersion(curTag); err != nil {
			return nil // a tag that is not a version has no "newer"
		}
	}
	tags, err := r.tags.Tags(ctx, image)
	if err != nil {
		return err
	}
	best, forward := order.Latest(policy, tags, curTag, anyVersion)
	key := t.Event().Key()
	if !forward || r.submitted[key] == best {
		return nil
	}
	if r.opts.Held != nil {
		if held, why := r.opts.Held(ctx, t.Event()); held {
			r.log.Info("reconcile: target held, newer tag not submitted", "hook", h.ID, "workload", t.Workload,
				"tag", best, "reason", "held", "detail", why)
			return nil
		}
	}
	now := time.Now().UTC()
	// Under an alphabetical order the step forward was decided here; a semantic-version check on
	// top could refuse what the order chose (1.9 after 1.10).
	ev := intake.Event(&h, event.Push{Image: image + ":" + best, Source: Source}, []event.Target{t.Event()}, now)
	ev.NoDowngrade = order == tagpolicy.BySemver
	if err := r.submit.Submit(ctx, ev); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	r.submitted[key] = best
	r.events.Inc()
	r.log.Info("reconcile found a push whose webhook never came", "hook", h.ID, "workload", t.Workload, "marker", t.Marker, "image", ev.Push.Image, "event", ev.ID)
	return nil
}

// currentMarked reads a marker target's image by manifests' one rule for what a place holds now
// (manifests.CurrentMarked, which CurrentImage applies): the repository to ask is image when given
// (reconcile.image), else the marked reference's; the tag is the one git holds now ("" when no
// marked value holds one).
func currentMarked(ctx context.Context, repo Repo, t config.Target, image string) (string, string, error) {
	var m manifests.MarkedImage
	err := repo.Read(ctx, func(fsys fs.FS) error {
		var err error
		m, err = manifests.CurrentMarked(fsys, manifests.Place{Path: t.Path, Marker: t.Marker}, manifests.Options{})
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("marker %s: %w", t.Marker, err)
	}
	if image != "" {
		return image, m.Tag, nil
	}
	if m.Ref == "" {
		return "", "", fmt.Errorf("marker %q under %s: no marked value names the repository; set reconcile.image", t.Marker, t.Path)
	}
	ref, err := imageref.Parse(m.Ref)
	if err != nil {
		return "", "", fmt.Errorf("marker %s: %w", t.Marker, err)
	}
	return ref.Repo, m.Tag, nil
}

// CurrentImage reads the image a target holds in git now, whatever its kind of place (a workload
// container, a Helm values file, marked scalars): reconcile's starting point, the status page's
// "in git now", and what promotion compares with what imagehook wrote.
func CurrentImage(ctx context.Context, repo Repo, t event.Target) (string, error) {
	var current string
	err := repo.Read(ctx, func(fsys fs.FS) error {
		var err error
		current, err = CurrentImageIn(fsys, t)
		return err
	})
	return current, err
}

// CurrentImageIn reads the image a target holds in a tree already read (the status page's cached
// tip).
func CurrentImageIn(fsys fs.FS, t event.Target) (string, error) {
	p, err := Place(t)
	if err != nil {
		return "", err
	}
	return manifests.CurrentImage(fsys, p, manifests.Options{})
}

// Place is where a target's value is in its repository, as package manifests names it.
func Place(t event.Target) (manifests.Place, error) {
	p := manifests.Place{Path: t.Path, Marker: t.Marker}
	switch v := t.Values; {
	case t.Marker != "":
	case v != nil:
		values := *v
		p.Values = &values
	default:
		var err error
		if p.Workload, err = manifests.WorkloadTarget(t.Workload, t.Namespace, t.Container); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Package event defines the registry-neutral push event that flows from the listener through the
// updater, and the record of what happened to it.
package event

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned for an unknown event id.
var ErrNotFound = errors.New("event not found")

// ErrDuplicateDelivery is returned when an event repeats a delivery id already journaled for its
// hook: a registry's redelivery or a replay.
var ErrDuplicateDelivery = errors.New("duplicate delivery")

// Status is where an event or one of its steps stands.
type Status string

// The statuses an event or step reports, as GET /events/{id} and the event page show them.
const (
	Queued    Status = "queued"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Ignored   Status = "ignored"
	// AwaitingMerge is a change pushed to a pull request that nobody has merged yet: not a failure,
	// not done.
	AwaitingMerge Status = "awaiting merge"
	// Cancelled is a change whose pull request was closed without merging.
	Cancelled Status = "cancelled"
	// Unknown is a deploy step that found no GitOps application deploying the change.
	Unknown Status = "unknown"
)

// Done reports whether s is final.
func (s Status) Done() bool { return s == Succeeded || s == Failed || s == Ignored || s == Cancelled }

// Push is one image pushed to a registry, as a registry's payload describes it.
type Push struct {
	// Image is the full reference without digest: host/repository:tag.
	Image string `json:"image"`
	// Digest is the manifest digest when the payload carries a valid one.
	Digest string `json:"digest,omitempty"`
	Pusher string `json:"pusher,omitempty"`
	// PushedAt is the registry's time of the push, when given.
	PushedAt time.Time `json:"pushedAt,omitzero"`
	// ExplicitHost is set when the caller chose the registry host (net_type, a hook's
	// registryHost): it is written even where a manifest spells another host.
	ExplicitHost bool `json:"explicitHost,omitempty"`
	// Source names the payload format (aliyun, dockerhub, harbor, custom, …).
	Source string `json:"source"`
}

// Ref returns the pushed reference to write: the image, with its digest when the payload had one.
func (p Push) Ref() string {
	if p.Digest != "" {
		return p.Image + "@" + p.Digest
	}
	return p.Image
}

// Target is one place to update, copied from the hook's config when the event is accepted so that a
// config change does not alter an event already in the journal.
type Target struct {
	Repo      string `json:"repo,omitempty"`
	Path      string `json:"path,omitempty"`
	Workload  string `json:"workload,omitempty"` // kind/name
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	// WaitRollout, when positive, makes direct apply wait for the rollout.
	WaitRollout time.Duration `json:"waitRollout,omitempty"`
	// Values and Marker select a Helm values file or marked scalars instead of a workload.
	Values *Values `json:"values,omitempty"`
	Marker string  `json:"marker,omitempty"`
}

// Values names where a Helm values file keeps an image, as dotted key paths: either Image (one
// full reference), or Repository with Tag, and optionally Registry and Digest. It is one type for
// the config's targets[].values, the event that freezes them and manifests that rewrites the file.
type Values struct {
	File       string `json:"file" yaml:"file"`
	Image      string `json:"image,omitempty" yaml:"image"`
	Registry   string `json:"registry,omitempty" yaml:"registry"`
	Repository string `json:"repository,omitempty" yaml:"repository"`
	Tag        string `json:"tag,omitempty" yaml:"tag"`
	Digest     string `json:"digest,omitempty" yaml:"digest"`
}

// Key identifies the place a target updates, for "what was applied last" and "the latest event
// wins": two targets with the same key change the same value. It is a JoinKey, so every journal
// backend stores it as it is.
func (t Target) Key() string {
	parts := []string{t.Repo, t.Path, strings.ToLower(t.Workload), t.Namespace, t.Container, t.Cluster, t.Marker}
	if v := t.Values; v != nil {
		parts = append(parts, v.File, v.Image, v.Registry, v.Repository, v.Tag, v.Digest)
	}
	return JoinKey(parts...)
}

// JoinKey joins the parts of a key into one string that every journal backend can store and
// compare: each part is Go-quoted (so NUL, invalid UTF-8 and the separator inside a part are
// escaped) and the parts are separated by a space. Distinct parts give distinct keys, and the key
// reads well in a log line. PostgreSQL's text cannot hold NUL, the separator of earlier releases.
func JoinKey(parts ...string) string {
	// Quoted in place, into one buffer sized for the plain case: keys are built per event and
	// target on every batch.
	n := 0
	for _, p := range parts {
		n += len(p) + 3
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendQuote(b, p)
	}
	return string(b)
}

// Mail is the hook's mail routing, copied when the event is accepted.
type Mail struct {
	To       []string `json:"to,omitempty"`
	On       []string `json:"on,omitempty"`
	Language string   `json:"language,omitempty"`
}

// Event is an accepted push for one hook, with its outcome.
type Event struct {
	ID   string `json:"id"`
	Hook string `json:"hook"`
	Push Push   `json:"push"`
	Pin  string `json:"pin,omitempty"`
	// NoDowngrade refuses a lower semantic version than the target runs.
	NoDowngrade bool `json:"noDowngrade,omitempty"`
	// AllowOlder applies the push even when its registry time is older than the push already
	// applied to the target (a deliberate rollback).
	AllowOlder bool `json:"allowOlder,omitempty"`
	// Verify resolves the pushed tag in its registry before anything is written.
	Verify bool `json:"verify,omitempty"`
	// Signed also requires a cosign signature of the registry's digest, with the hook's key.
	Signed bool `json:"signed,omitempty"`
	// Delivery is the registry's delivery id, unique per hook in the journal.
	Delivery string `json:"delivery,omitempty"`
	// Seq is the event's place in the journal, set when it is recorded: within one target the
	// event journaled last wins.
	Seq     int64    `json:"seq,omitempty"`
	Targets []Target `json:"targets"`
	Mail    *Mail    `json:"mail,omitempty"`
	// Notify names the chat notifiers that hear about the event (the hook's, when accepted).
	Notify []string `json:"notify,omitempty"`
	// PromotedFrom is set on a promotion: the event of the stage before that reached the image.
	PromotedFrom *PromotedFrom `json:"promotedFrom,omitempty"`
	Status       Status        `json:"status"`
	ReceivedAt   time.Time     `json:"receivedAt"`
	UpdatedAt    time.Time     `json:"updatedAt,omitzero"`
	Attempts     int           `json:"attempts,omitempty"`
	Steps        []Step        `json:"steps,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	Error        string        `json:"error,omitempty"`
}

// Repo returns the manifests repository the event's targets write to, or "" for direct-apply only.
// Config validation guarantees that a hook's targets name at most one repository.
func (e *Event) Repo() string {
	for _, t := range e.Targets {
		if t.Repo != "" {
			return t.Repo
		}
	}
	return ""
}

// Step names: the stages of the flow an event records.
const (
	StepGit    = "git"
	StepApply  = "apply"
	StepNotify = "notify"
	StepVerify = "verify"
	// StepDeploy follows a pushed commit until the GitOps tool synced it and the workload is ready.
	StepDeploy = "deploy"
)

// The event's lifecycle is these methods, each of which stamps UpdatedAt: Queue (journaled, or
// waiting for another try), Start (an attempt begins), Resume (running again without a new attempt:
// handed to the finisher, following a deploy, completing a merged pull request), Await (a change
// waiting for its pull request's merge) and Settle, the only writer of a final status.

// Queue marks the event waiting in its queue: journaled, or put back for another try.
func (e *Event) Queue() { e.Status, e.UpdatedAt = Queued, time.Now() }

// Start marks the event running and counts the attempt.
func (e *Event) Start() {
	e.Status, e.UpdatedAt = Running, time.Now()
	e.Attempts++
}

// Resume marks the event running again without counting an attempt: its git step is done and the
// steps after it (direct apply, deploy, notify) are under way.
func (e *Event) Resume() { e.Status, e.UpdatedAt = Running, time.Now() }

// Await marks the event's change waiting for its pull request's merge: not a failure, not done.
func (e *Event) Await() { e.Status, e.UpdatedAt = AwaitingMerge, time.Now() }

// Settle sets the event's final status from its steps — the one rule, for the updater, the
// notifiers and the pages: ignored when a step refused the push at admission (a duplicate
// delivery, an older push, one superseded by a push already applied: whatever earlier attempts'
// steps said); otherwise failed when any step before notification failed or the event carries an
// error, cancelled when its pull request was closed unmerged, ignored when every step was ignored
// (another repository, a duplicate, a replay), succeeded otherwise. A failed notification never
// fails an event. The event's error, like a step's texts, is bounded by Cut. It stamps UpdatedAt
// and returns the status.
func (e *Event) Settle() Status {
	e.Status, e.UpdatedAt = e.settled(), time.Now()
	e.Error = Cut(e.Error)
	if st, ok := e.Step(StepGit); ok && st.Status == Failed && e.Error == "" && e.Status != Ignored {
		e.Error = st.Error
	}
	return e.Status
}

// settled is Settle's rule, without changing the event.
func (e *Event) settled() Status {
	for _, s := range e.Steps {
		if s.Status == Ignored && s.Reason.refusal() {
			return Ignored
		}
	}
	status := Ignored
	for _, s := range e.Steps {
		switch {
		case s.Name == StepNotify:
		case s.Status == Cancelled && status != Failed:
			status = Cancelled
		case s.Status == Failed:
			status = Failed
		case s.Status == Succeeded && status != Failed && status != Cancelled:
			status = Succeeded
		}
	}
	if e.Error != "" {
		return Failed
	}
	return status
}

// Failed reports whether the event failed by the rule of Settle, without changing it.
func (e *Event) Failed() bool { return e.settled() == Failed }

// Step is the outcome of one stage of the flow: StepVerify, StepGit, StepApply, StepDeploy or
// StepNotify.
type Step struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Repo    string `json:"repo,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	Commit  string `json:"commit,omitempty"`
	// URL links the commit in the repository's web UI, when the repo has a commitURL.
	URL     string   `json:"url,omitempty"`
	Files   []string `json:"files,omitempty"`
	Changes []Change `json:"changes,omitempty"`
	Detail  string   `json:"detail,omitempty"`
	// Reason is the typed cause beside Detail: code reads Reason, people read Detail.
	Reason Reason `json:"reason,omitempty"`
	// Skipped names the files that were not read, and why (too big, past the event's budget, not
	// valid YAML): a target in one of them would not have been found.
	Skipped []string `json:"skipped,omitempty"`
	// PR is the pull request that carries the change, in pull-request write-back.
	PR *PullRequest `json:"pullRequest,omitempty"`
	// Apps are the GitOps applications that deploy the change (StepDeploy), SyncedAt when their
	// tool synced it and ReadyAt when the workload had rolled out.
	Apps     []string  `json:"apps,omitempty"`
	SyncedAt time.Time `json:"syncedAt,omitzero"`
	ReadyAt  time.Time `json:"readyAt,omitzero"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`

	// RefreshedAt is when imagehook had asked each application's GitOps tool to look now
	// (StepDeploy, watch.refresh); SyncStartedAfter is how many seconds after the following began
	// (right after the push) the last of the tools was first seen syncing the change.
	RefreshedAt      time.Time `json:"refreshedAt,omitzero"`
	SyncStartedAfter float64   `json:"syncStartedAfter,omitempty"`
}

// PullRequest is a forge's pull (merge) request that carries an event's change.
type PullRequest struct {
	Number int64  `json:"number"`
	URL    string `json:"url,omitempty"`
	Branch string `json:"branch"`
	// State is open, merged or closed.
	State string `json:"state"`
	// Head is the commit imagehook last pushed to the branch: it auto-merges, and rebuilds the
	// branch, only while the branch still ends there.
	Head string `json:"head,omitempty"`
}

// Change is one image value changed (or found already current) in a manifest or on a cluster.
type Change struct {
	File      string `json:"file,omitempty"`
	Workload  string `json:"workload"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container"`
	Old       string `json:"old"`
	New       string `json:"new"`
}

// Changed reports whether the value was changed, not found already current: the one rule for
// which changes a commit, a report or a deploy follow counts.
func (c Change) Changed() bool { return c.Old != c.New }

// SetStep records s, replacing an earlier step of the same name, repo and cluster. Its texts
// from peers are bounded by Cut.
func (e *Event) SetStep(s Step) {
	s = s.cut()
	for i, old := range e.Steps {
		if old.Name == s.Name && old.Repo == s.Repo && old.Cluster == s.Cluster {
			e.Steps[i] = s
			return
		}
	}
	e.Steps = append(e.Steps, s)
}

// Step returns the step of that name, if any.
func (e *Event) Step(name string) (Step, bool) {
	for _, s := range e.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new event id: 26 characters that sort by creation time (48-bit milliseconds) and
// carry 80 random bits, so ids from several processes never collide.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// OneLine returns s as one line of text: every control character and every Unicode line or
// paragraph separator becomes a space. Every value that reaches a commit message, a trailer, a
// mail or a chat message — workload, container, file, image, pusher, hook — goes through it, so
// that no payload or manifest can add lines of its own (a forged "Imagehook-Event:" trailer, a
// fake "Commit:" line in a mail).
func OneLine(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return ' '
		}
		return r
	}, s)
}

// Printable returns a copy of the event whose every text that reports show — hook, image, pusher,
// errors, details, changes, skipped files, targets — is OneLine: the copy commit templates and
// mail templates see.
func (e *Event) Printable() *Event {
	cp := *e
	cp.Hook, cp.Error = OneLine(e.Hook), OneLine(e.Error)
	cp.Push.Image, cp.Push.Pusher, cp.Push.Source, cp.Push.Digest = OneLine(e.Push.Image), OneLine(e.Push.Pusher), OneLine(e.Push.Source), OneLine(e.Push.Digest)
	cp.Steps = make([]Step, len(e.Steps))
	for i, s := range e.Steps {
		s.Detail, s.Error, s.Commit, s.URL = OneLine(s.Detail), OneLine(s.Error), OneLine(s.Commit), OneLine(s.URL)
		s.Changes = append([]Change(nil), s.Changes...)
		for j, c := range s.Changes {
			s.Changes[j] = Change{File: OneLine(c.File), Workload: OneLine(c.Workload), Namespace: OneLine(c.Namespace),
				Container: OneLine(c.Container), Old: OneLine(c.Old), New: OneLine(c.New)}
		}
		s.Skipped = append([]string(nil), s.Skipped...)
		for j := range s.Skipped {
			s.Skipped[j] = OneLine(s.Skipped[j])
		}
		cp.Steps[i] = s
	}
	cp.Targets = append([]Target(nil), e.Targets...)
	for i, t := range cp.Targets {
		cp.Targets[i].Namespace, cp.Targets[i].Workload, cp.Targets[i].Container = OneLine(t.Namespace), OneLine(t.Workload), OneLine(t.Container)
	}
	return &cp
}

func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError
}

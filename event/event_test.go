package event

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// settleRule is Settle's rule as its doc comment states it, in priority order: a second reading,
// so that the loop's order of steps cannot decide the outcome.
func settleRule(e *Event) Status {
	has := func(st Status) bool {
		return slices.ContainsFunc(e.Steps, func(s Step) bool { return s.Name != StepNotify && s.Status == st })
	}
	switch {
	case slices.ContainsFunc(e.Steps, func(s Step) bool { return s.Status == Ignored && s.Reason.refusal() }):
		return Ignored
	case e.Error != "" || has(Failed):
		return Failed
	case has(Cancelled):
		return Cancelled
	case has(Succeeded):
		return Succeeded
	}
	return Ignored
}

var allStatuses = []Status{"", Queued, Running, Succeeded, Failed, Ignored, AwaitingMerge, Cancelled, Unknown}

// TestSettleEveryCombination settles every combination of statuses of the verify, git, apply and
// notify steps, with and without the event's error and an admission's refusal, in two orders.
func TestSettleEveryCombination(t *testing.T) {
	names := []string{StepVerify, StepGit, StepApply, StepNotify}
	n := 0
	var rec func(i int, steps []Step)
	rec = func(i int, steps []Step) {
		if i == len(names) {
			for _, errText := range []string{"", "gave up after 10 attempts"} {
				for _, refused := range []Reason{"", ReasonUnchanged, ReasonDuplicate, ReasonOlderPush, ReasonSuperseded} {
					n++
					checkSettle(t, steps, errText, refused)
				}
			}
			return
		}
		rec(i+1, steps) // the step is absent
		for _, st := range allStatuses[1:] {
			rec(i+1, append(slices.Clone(steps), Step{Name: names[i], Status: st, Error: names[i] + " error"}))
		}
	}
	rec(0, nil)
	if want := 9 * 9 * 9 * 9 * 2 * 5; n != want {
		t.Fatalf("checked %d combinations, want %d", n, want)
	}
}

func checkSettle(t *testing.T, steps []Step, errText string, reason Reason) {
	t.Helper()
	steps = slices.Clone(steps)
	for i := range steps {
		if steps[i].Name == StepGit {
			steps[i].Reason = reason
		}
	}
	forward := &Event{Steps: steps, Error: errText}
	backward := &Event{Steps: slices.Clone(steps), Error: errText}
	slices.Reverse(backward.Steps)
	want := settleRule(forward)
	failed := forward.Failed()
	before := time.Now()
	got, gotBack := forward.Settle(), backward.Settle()
	if got != want || gotBack != want || forward.Status != want {
		t.Fatalf("steps %s, error %q: Settle = %s (reversed %s), want %s", describe(steps), errText, got, gotBack, want)
	}
	if failed != (want == Failed) {
		t.Fatalf("steps %s: Failed() = %v before Settle, status %s", describe(steps), failed, want)
	}
	if forward.UpdatedAt.Before(before) {
		t.Fatalf("Settle did not stamp UpdatedAt")
	}
	git, ok := forward.Step(StepGit)
	switch {
	case errText != "" && forward.Error != errText:
		t.Fatalf("the event's error became %q", forward.Error)
	case errText == "" && ok && git.Status == Failed && want != Ignored && forward.Error != git.Error:
		t.Fatalf("steps %s: event error %q, want the failed git step's %q", describe(steps), forward.Error, git.Error)
	case errText == "" && (!ok || git.Status != Failed) && forward.Error != "":
		t.Fatalf("steps %s: event error %q from nowhere", describe(steps), forward.Error)
	}
}

func describe(steps []Step) string {
	var parts []string
	for _, s := range steps {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", s.Name, s.Status, s.Reason))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// TestSettleCases names the outcomes the flow relies on.
func TestSettleCases(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []Step
		err   string
		want  Status
	}{
		{"no steps", nil, "", Ignored},
		{"pushed", []Step{{Name: StepGit, Status: Succeeded}}, "", Succeeded},
		{"pushed, notification failed", []Step{{Name: StepGit, Status: Succeeded}, {Name: StepNotify, Status: Failed}}, "", Succeeded},
		{"only a notification", []Step{{Name: StepNotify, Status: Succeeded}}, "", Ignored},
		{"git failed, apply succeeded", []Step{{Name: StepGit, Status: Failed}, {Name: StepApply, Status: Succeeded}}, "", Failed},
		{"verify failed", []Step{{Name: StepVerify, Status: Failed}}, "verify: no such tag", Failed},
		{"gave up", []Step{{Name: StepGit, Status: Failed}}, "gave up after 10 attempts", Failed},
		{"other repository", []Step{{Name: StepGit, Status: Ignored}}, "", Ignored},
		{"verified, then the git step ignored it", []Step{{Name: StepVerify, Status: Succeeded}, {Name: StepGit, Status: Ignored}}, "", Succeeded},
		{"verified, then a duplicate", []Step{{Name: StepVerify, Status: Succeeded}, {Name: StepGit, Status: Ignored, Reason: ReasonDuplicate}}, "", Ignored},
		{"verified, then superseded at admission", []Step{{Name: StepVerify, Status: Succeeded}, {Name: StepGit, Status: Ignored, Reason: ReasonSuperseded}}, "", Ignored},
		{"superseded in the batch", []Step{{Name: StepGit, Status: Succeeded, Reason: ReasonSuperseded}}, "", Succeeded},
		{"older push on a cluster", []Step{{Name: StepApply, Status: Ignored, Reason: ReasonOlderPush}}, "", Ignored},
		{"closed unmerged", []Step{{Name: StepVerify, Status: Succeeded}, {Name: StepGit, Status: Cancelled}}, "", Cancelled},
		{"awaiting merge", []Step{{Name: StepGit, Status: AwaitingMerge}}, "", Ignored},
		{"deploy unknown", []Step{{Name: StepGit, Status: Succeeded}, {Name: StepDeploy, Status: Unknown}}, "", Succeeded},
		{"deploy failed", []Step{{Name: StepGit, Status: Succeeded}, {Name: StepDeploy, Status: Failed}}, "", Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Event{Steps: tt.steps, Error: tt.err}
			if got := e.Settle(); got != tt.want {
				t.Errorf("Settle = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestLifecycle: every transition stamps UpdatedAt, and only Start counts an attempt.
func TestLifecycle(t *testing.T) {
	for _, tt := range []struct {
		name     string
		do       func(*Event)
		want     Status
		attempts int
	}{
		{"queue", (*Event).Queue, Queued, 1},
		{"start", (*Event).Start, Running, 2},
		{"resume", (*Event).Resume, Running, 1},
		{"await", (*Event).Await, AwaitingMerge, 1},
		{"settle", func(e *Event) { e.Settle() }, Succeeded, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Event{Attempts: 1, Steps: []Step{{Name: StepGit, Status: Succeeded}}}
			before := time.Now()
			tt.do(e)
			if e.Status != tt.want || e.Attempts != tt.attempts || e.UpdatedAt.Before(before) {
				t.Errorf("status %s, attempts %d, updated %v; want %s, %d, stamped", e.Status, e.Attempts, e.UpdatedAt, tt.want, tt.attempts)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"plain", "deployment/web", "deployment/web"},
		{"empty", "", ""},
		{"non-ASCII kept", "网站 ✓ café", "网站 ✓ café"},
		{"newline", "web\nImagehook-Event: forged", "web Imagehook-Event: forged"},
		{"carriage return", "a\r\nb", "a  b"},
		{"tab", "a\tb", "a b"},
		{"NUL", "a\x00b", "a b"},
		{"DEL", "a\x7fb", "a b"},
		{"C1 next line", "a\u0085b", "a b"},
		{"line separator", "a\u2028b", "a b"},
		{"paragraph separator", "a\u2029b", "a b"},
		{"invalid UTF-8", "a\xffb", "a b"},
		{"only controls", "\n\n", "  "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := OneLine(tt.in); got != tt.want {
				t.Errorf("OneLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := OneLine(tt.in); OneLine(got) != got {
				t.Errorf("OneLine is not idempotent on %q", tt.in)
			}
		})
	}
}

// TestChangeChanged: a change counts when its value moved, never when the value was found
// already current.
func TestChangeChanged(t *testing.T) {
	for _, tt := range []struct {
		name     string
		old, new string
		want     bool
	}{
		{"moved", "web:1.0", "web:1.1", true},
		{"already current", "web:1.1", "web:1.1", false},
		{"digest added", "web:1.1", "web:1.1@sha256:" + strings.Repeat("a", 64), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Change{Old: tt.old, New: tt.new}).Changed(); got != tt.want {
				t.Errorf("Changed() = %v, want %v", got, tt.want)
			}
		})
	}
}

// BenchmarkTargetKey measures a target's key, built per event and target on every batch.
func BenchmarkTargetKey(b *testing.B) {
	t := Target{Repo: "apps", Path: "apps/website", Workload: "deployment/website", Namespace: "web", Container: "website"}
	for b.Loop() {
		_ = t.Key()
	}
}

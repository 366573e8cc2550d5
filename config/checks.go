package config

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imagehook/imagehook/event"
)

// What a template sees when it runs: the same shapes as updater.CommitData and updater.BranchData
// (a test in this package compares them), so that executing a template once against a sample at
// load finds what only an event would find otherwise — a field that does not exist.
type (
	commitData struct {
		Events  []*event.Event
		Changes []event.Change
	}
	branchData struct {
		Hook   string
		Target event.Target
	}
)

// sampleEvent is an event with every part a template may range over or print.
func sampleEvent() *event.Event {
	change := event.Change{File: "apps/web/deployment.yaml", Workload: "deployment/web", Namespace: "web", Container: "web",
		Old: "registry.example.com/acme/web:1.0.0", New: "registry.example.com/acme/web:1.1.0"}
	return &event.Event{ID: "01sampleevent0000000000000", Hook: "web",
		Push:    event.Push{Image: "registry.example.com/acme/web:1.1.0", Digest: "sha256:" + strings.Repeat("0", 64), Pusher: "ci", Source: "custom", PushedAt: time.Unix(0, 0)},
		Targets: []event.Target{{Repo: "apps", Path: "apps/web", Workload: "deployment/web", Namespace: "web", Container: "web"}},
		Mail:    &event.Mail{To: []string{"ops@example.com"}}, Notify: []string{"chat"}, Status: event.Succeeded, ReceivedAt: time.Unix(0, 0),
		Steps: []event.Step{{Name: event.StepGit, Status: event.Succeeded, Repo: "apps", Commit: strings.Repeat("0", 40),
			Files: []string{change.File}, Changes: []event.Change{change}, PR: &event.PullRequest{Number: 1, Branch: "imagehook/web", State: "open"}}},
		Warnings: []string{"sample"}}
}

// sampleOutput bounds what executing a template at load may write.
const sampleOutput = 64 << 10

// boundedWriter fails a template that writes more than sampleOutput bytes.
type boundedWriter struct{ strings.Builder }

var errTooLong = errors.New("writes more than 64 KiB for one event")

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > sampleOutput {
		return 0, errTooLong
	}
	return w.Builder.Write(p)
}

// execSample parses text as a template with options and executes it once against data; the
// output is returned.
func execSample(name, text string, data any, options ...string) (string, error) {
	tmpl, err := template.New(name).Option(options...).Parse(text)
	if err != nil {
		return "", err
	}
	var w boundedWriter
	if err := tmpl.Execute(&w, data); err != nil {
		return "", fmt.Errorf("run against a sample event: %w", err)
	}
	return w.String(), nil
}

// validateTemplates checks a repository's commit and branch templates by running them.
func validateTemplates(c *Config, errs *problems, i int, r Repo) {
	if r.CommitTemplate != "" {
		if _, err := execSample("commit", r.CommitTemplate, commitData{Events: []*event.Event{sampleEvent()}, Changes: sampleEvent().Steps[0].Changes}); err != nil {
			errs.add("repos[%s].commitTemplate%s: %v", r.Name, lineOf(c.node("repos", i, "commitTemplate")), err)
		}
	}
	w := r.WriteBack
	if !w.PullRequests() || w.Branch == "" {
		return
	}
	at := lineOf(c.node("repos", i, "writeBack", "branch"))
	if at == "" {
		at = lineOf(c.node("repos", i, "writeBack"))
	}
	ev := sampleEvent()
	got, err := execSample("branch", w.Branch, branchData{Hook: ev.Hook, Target: ev.Targets[0]}, "missingkey=error")
	switch {
	case err != nil:
		errs.add("repos[%s].writeBack.branch%s: %v", r.Name, at, err)
	case strings.TrimSpace(got) == "":
		errs.add("repos[%s].writeBack.branch%s: gives an empty branch name", r.Name, at)
	case strings.TrimSpace(got) == r.Branch:
		errs.add("repos[%s].writeBack.branch%s: gives %q, the base branch itself; pull requests need a branch of their own (default imagehook/{{ .Target.Workload }})",
			r.Name, at, r.Branch)
	}
}

// validateDSN checks that a PostgreSQL DSN parses, as the journal and replicas will parse it.
// The DSN is never quoted: it holds the database password, and so do the parser's messages.
func validateDSN(c *Config, errs *problems) {
	if c.Journal.Driver != "postgres" || Blank(c.Journal.DSN) {
		return
	}
	if _, err := pgxpool.ParseConfig(c.Journal.DSN); err != nil {
		key := "dsn"
		if c.Journal.DSNFile != "" {
			key = "dsnFile"
		}
		errs.add("journal.%s%s: does not parse as a PostgreSQL connection string (postgres://user:password@host/db?… or key=value pairs); it is not shown, since it holds the password",
			key, lineOf(c.node("journal", key)))
	}
}

// bounds are the shortest and longest sensible value of a kind of duration; 0 always means the
// key's default.
type bounds struct{ min, max time.Duration }

var (
	timeoutBounds   = bounds{time.Second, time.Hour}
	waitBounds      = bounds{time.Second, 24 * time.Hour}
	pollBounds      = bounds{time.Second, 24 * time.Hour}
	reconcileBounds = bounds{time.Second, 7 * 24 * time.Hour}
	retentionBounds = bounds{time.Minute, 10 * 365 * 24 * time.Hour}
)

// checkDuration refuses a negative or absurd duration at a path of the file, naming its line.
func checkDuration(c *Config, errs *problems, d Duration, b bounds, name string, path ...any) {
	v := time.Duration(d)
	if v == 0 {
		return
	}
	at := lineOf(c.node(path...))
	switch {
	case v < 0:
		errs.add("%s%s: %s is negative; give a duration from %s to %s", name, at, v, spell(b.min), spell(b.max))
	case v < b.min:
		errs.add("%s%s: %s is shorter than %s", name, at, v, spell(b.min))
	case v > b.max:
		errs.add("%s%s: %s is longer than %s", name, at, v, spell(b.max))
	}
}

// spell spells a bound as people write it: 24h, not 24h0m0s.
func spell(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// validateDurations checks every duration of the file against its kind's bounds.
func validateDurations(c *Config, errs *problems) {
	checkDuration(c, errs, c.Retention, retentionBounds, "retention", "retention")
	for i, r := range c.Repos {
		where := fmt.Sprintf("repos[%s]", r.Name)
		checkDuration(c, errs, r.Timeout, timeoutBounds, where+".timeout", "repos", i, "timeout")
		checkDuration(c, errs, r.WriteBack.PollInterval, pollBounds, where+".writeBack.pollInterval", "repos", i, "writeBack", "pollInterval")
		if r.Watch != nil {
			checkDuration(c, errs, r.Watch.Timeout, waitBounds, where+".watch.timeout", "repos", i, "watch", "timeout")
		}
	}
	if m := c.Mail; m != nil {
		checkDuration(c, errs, m.Timeout, timeoutBounds, "mail.timeout", "mail", "timeout")
		checkDuration(c, errs, m.Deadline, waitBounds, "mail.deadline", "mail", "deadline")
	}
	for i, h := range c.Hooks {
		where := fmt.Sprintf("hooks[%s]", h.ID)
		if h.Reconcile != nil {
			checkDuration(c, errs, h.Reconcile.Interval, reconcileBounds, where+".reconcile.interval", "hooks", i, "reconcile", "interval")
		}
		for j, t := range h.Targets {
			checkDuration(c, errs, t.WaitRollout, waitBounds, fmt.Sprintf("%s.targets[%d].waitRollout", where, j), "hooks", i, "targets", j, "waitRollout")
		}
	}
}

package config

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/redact"

	"github.com/imagehook/imagehook/window"
)

// ApprovalLinks lets a "waiting for approval" message in chat or mail carry a signed one-time
// approve and reject link per approver.
type ApprovalLinks struct {
	// URL is imagehook's address as approvers reach it, like https://imagehook.example.com.
	URL string `yaml:"url"`
	// Key signs the links (at least 32 bytes; shared by replicas).
	Key     string   `yaml:"key" secret:"true"`
	KeyFile string   `yaml:"keyFile" secretfile:"Key"`
	TTL     Duration `yaml:"ttl"`
}

// Approver is a person who may approve promotions; the token is theirs alone.
type Approver struct {
	Name      string `yaml:"name"`
	Token     string `yaml:"token" secret:"true"`
	TokenFile string `yaml:"tokenFile" secretfile:"Token"`
}

// Pipeline moves one image through stages: a push enters the stages without after, and each other
// stage is entered by promotion from the stage it follows once its gates open.
type Pipeline struct {
	Name   string  `yaml:"name"`
	Stages []Stage `yaml:"stages"`
}

// Stage is a set of targets and the gates a candidate passes to reach them.
type Stage struct {
	Name    string   `yaml:"name"`
	After   string   `yaml:"after"`
	Gates   Gates    `yaml:"gates"`
	Targets []Target `yaml:"targets"`
	// Notify names notifiers that hear about promotions into the stage (the hook's hear too).
	Notify []string `yaml:"notify"`
	// Hold, set to strict on a stage entered by pushes, holds the hook's pushes too while the
	// stage is held; without it a held entry stage still takes them (a new build is a deliberate
	// new version).
	Hold string `yaml:"hold"`
}

// HoldStrict is the one value of a stage's hold.
const HoldStrict = "strict"

// Gates are what must hold before a candidate is promoted into a stage.
type Gates struct {
	// Ready waits until the previous stage runs the candidate Ready (deploy tracking or a direct
	// apply's rollout).
	Ready bool `yaml:"ready"`
	// Soak is how long the candidate must have run there (Ready, with ready: true).
	Soak     Duration  `yaml:"soak"`
	Approval *Approval `yaml:"approval"`
	Windows  *Windows  `yaml:"windows"`
}

// Approval asks Count distinct approvers of the list to approve the candidate's digest, or, with
// PullRequest, takes the merge of the promotion's pull request as the approval.
type Approval struct {
	Approvers []string `yaml:"approvers"`
	Count     int      `yaml:"count"`
	// PullRequest: the stage's repository writes back by pull request, and whoever merges it
	// approves; no approver is asked before.
	PullRequest bool `yaml:"pullRequest"`
}

// Windows say when a promotion may happen (package window).
type Windows struct {
	Timezone string         `yaml:"timezone"`
	Allow    []string       `yaml:"allow"`
	Deny     []string       `yaml:"deny"`
	Holidays HolidaysSource `yaml:"holidays"`
}

// HolidaysSource is "cn" (the calendar shipped with imagehook) or {file: path} (the user's own, in
// the format of window/holidays_cn.txt).
type HolidaysSource struct {
	Builtin string
	File    string
	data    []byte // read at load
}

// UnmarshalYAML takes a name or a mapping with file.
func (h *HolidaysSource) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		h.Builtin = n.Value
		return nil
	}
	var m struct {
		File string `yaml:"file"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	h.File = m.File
	return nil
}

// MarshalYAML writes it back as it was given.
func (h HolidaysSource) MarshalYAML() (any, error) {
	if h.File != "" {
		return map[string]string{"file": h.File}, nil
	}
	return h.Builtin, nil
}

// Window compiles the stage's windows; config validation has called it, so it fails only on a
// Windows that did not come through Load.
func (w *Windows) Window() (*window.Window, error) {
	spec := window.Spec{Timezone: w.Timezone, Allow: w.Allow, Deny: w.Deny}
	switch {
	case w.Holidays.File != "":
		h, err := window.ParseHolidays(bytes.NewReader(w.Holidays.data), w.Holidays.File)
		if err != nil {
			return nil, err
		}
		spec.Holidays = h
	case w.Holidays.Builtin == "cn":
		spec.Holidays = window.CN()
	case w.Holidays.Builtin != "":
		return nil, fmt.Errorf("holidays %q: want cn or {file: …}", w.Holidays.Builtin)
	}
	return window.Compile(spec)
}

// PipelineByName returns the pipeline with that name.
func (c *Config) PipelineByName(name string) (*Pipeline, bool) {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i], true
		}
	}
	return nil, false
}

// Entry returns the stages a push enters: those without after.
func (p *Pipeline) Entry() []*Stage {
	var out []*Stage
	for i := range p.Stages {
		if p.Stages[i].After == "" {
			out = append(out, &p.Stages[i])
		}
	}
	return out
}

// Stage returns the stage with that name.
func (p *Pipeline) Stage(name string) (*Stage, bool) {
	for i := range p.Stages {
		if p.Stages[i].Name == name {
			return &p.Stages[i], true
		}
	}
	return nil, false
}

// readHolidays reads the holiday files of the stages' windows at load.
func readHolidays(c *Config) error {
	for _, p := range c.Pipelines {
		for _, s := range p.Stages {
			if w := s.Gates.Windows; w != nil && w.Holidays.File != "" {
				data, err := os.ReadFile(w.Holidays.File)
				if err != nil {
					return fmt.Errorf("pipelines[%s].stages[%s].gates.windows.holidays.file: %w", p.Name, s.Name, err)
				}
				w.Holidays.data = data
			}
		}
	}
	return nil
}

// resolvePipelines gives each pipeline hook the targets of its pipeline's entry stages, so that
// the listener, reconcile and the updater treat its pushes like any hook's. It runs before
// validation, which then checks those targets as a hook's.
func resolvePipelines(c *Config, errs *problems) {
	for i := range c.Hooks {
		h := &c.Hooks[i]
		if h.Pipeline == "" {
			continue
		}
		where := fmt.Sprintf("hooks[%s]", h.ID)
		p, ok := c.PipelineByName(h.Pipeline)
		if !ok {
			errs.add("%s.pipeline%s: no pipeline named %q", where, lineOf(c.node("hooks", i, "pipeline")), h.Pipeline)
			continue
		}
		if len(h.Targets) > 0 && !h.pipelineTargets {
			errs.add("%s.targets%s: a hook with a pipeline enters its first stage; its targets are the stage's, so remove targets", where, lineOf(c.node("hooks", i, "targets")))
			continue
		}
		h.Targets = nil
		for _, s := range p.Entry() {
			h.Targets = append(h.Targets, s.Targets...)
		}
		h.pipelineTargets = true
	}
}

// validatePipelines checks approvers and pipelines: names, the stage graph (no cycle, no unknown
// stage), gates that can be met, and windows that compile.
func validatePipelines(c *Config, errs *problems, repos, clusters, notifiers map[string]bool) {
	approvers := map[string]bool{}
	for i, a := range c.Approvers {
		where := fmt.Sprintf("approvers[%d]", i)
		switch {
		case !validName(a.Name):
			errs.add("%s.name%s: %q: want letters, digits, '-', '_' or '.'", where, lineOf(c.node("approvers", i, "name")), a.Name)
		case approvers[a.Name]:
			errs.add("%s.name%s: duplicate approver %q", where, lineOf(c.node("approvers", i, "name")), a.Name)
		case Blank(a.Token):
			errs.add("approvers[%s].token%s: required (token or tokenFile); a blank token would let anyone approve", a.Name, lineOf(c.node("approvers", i)))
		}
		approvers[a.Name] = true
	}
	if l := c.ApprovalLinks; l != nil {
		at := lineOf(c.node("approvalLinks"))
		if u, err := url.Parse(l.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			errs.add("approvalLinks.url%s: %q: want imagehook's address, like https://imagehook.example.com", at, redact.URLs(l.URL))
		}
		if len(TrimSecret(l.Key)) < 32 {
			errs.add("approvalLinks.key%s: at least 32 bytes of secret are needed to sign links (key or keyFile)", at)
		}
		if l.TTL < Duration(time.Minute) || l.TTL > Duration(30*24*time.Hour) {
			errs.add("approvalLinks.ttl%s: %s: want between 1m and 720h", at, time.Duration(l.TTL))
		}
	}
	names := map[string]bool{}
	for i, p := range c.Pipelines {
		at := func(path ...any) string { return lineOf(c.node(append([]any{"pipelines", i}, path...)...)) }
		where := fmt.Sprintf("pipelines[%s]", p.Name)
		switch {
		case !validName(p.Name):
			errs.add("pipelines[%d].name%s: %q: want letters, digits, '-', '_' or '.'", i, at("name"), p.Name)
		case names[p.Name]:
			errs.add("%s%s: duplicate pipeline", where, at("name"))
		}
		names[p.Name] = true
		validateStages(c, errs, i, p, approvers, repos, clusters, notifiers)
	}
}

func validateStages(c *Config, errs *problems, pi int, p Pipeline, approvers, repos, clusters, notifiers map[string]bool) {
	at := func(path ...any) string { return lineOf(c.node(append([]any{"pipelines", pi, "stages"}, path...)...)) }
	if len(p.Stages) == 0 {
		errs.add("pipelines[%s].stages%s: at least one stage is required", p.Name, lineOf(c.node("pipelines", pi)))
		return
	}
	stages := map[string]int{}
	for j, s := range p.Stages {
		if _, dup := stages[s.Name]; dup {
			errs.add("pipelines[%s].stages[%d].name%s: duplicate stage %q", p.Name, j, at(j, "name"), s.Name)
		}
		if !validName(s.Name) {
			errs.add("pipelines[%s].stages[%d].name%s: %q: want letters, digits, '-', '_' or '.'", p.Name, j, at(j, "name"), s.Name)
		}
		stages[s.Name] = j
	}
	targets := map[string]string{}
	for j, s := range p.Stages {
		where := fmt.Sprintf("pipelines[%s].stages[%s]", p.Name, s.Name)
		if _, ok := stages[s.After]; s.After != "" && !ok {
			errs.add("%s.after%s: no stage named %q", where, at(j, "after"), s.After)
		}
		if s.After == "" && (s.Gates != Gates{}) {
			errs.add("%s.gates%s: a stage without after is entered by pushes; gates belong to stages that follow another", where, at(j, "gates"))
		}
		switch {
		case s.Hold != "" && s.Hold != HoldStrict:
			errs.add("%s.hold%s: %q: want strict, or no hold", where, at(j, "hold"), s.Hold)
		case s.Hold != "" && s.After != "":
			errs.add("%s.hold%s: strict holds the pushes a stage takes; a stage after another takes none (a held one is never promoted into)", where, at(j, "hold"))
		}
		Hook{Targets: s.Targets}.validateTargets(errs, where, repos, clusters)
		for k, t := range s.Targets {
			key := t.Event().Key()
			if other, dup := targets[key]; dup {
				errs.add("%s.targets[%d]%s: the same place as a target of stage %q; a value can be in one stage only", where, k, at(j, "targets", k), other)
			}
			targets[key] = s.Name
		}
		for _, n := range s.Notify {
			if !notifiers[n] {
				errs.add("%s.notify: no notifier named %q", where, n)
			}
		}
		validateGates(c, errs, where, s.Gates, s.After, s.Targets, p, approvers, at(j, "gates"))
	}
	if cycle := stageCycle(p); cycle != "" {
		errs.add("pipelines[%s].stages%s: after forms a cycle (%s); stages form a chain or a tree", p.Name, lineOf(c.node("pipelines", pi, "stages")), cycle)
	}
}

func validateGates(c *Config, errs *problems, where string, g Gates, after string, targets []Target, p Pipeline, approvers map[string]bool, at string) {
	if g.Soak < 0 || time.Duration(g.Soak) > 90*24*time.Hour {
		errs.add("%s.gates.soak%s: %s: want between 0 and 2160h", where, at, time.Duration(g.Soak))
	}
	if g.Ready && after != "" {
		if prev, ok := p.Stage(after); ok && !canReportReady(c, prev) {
			errs.add("%s.gates.ready%s: nothing can report stage %q Ready: give its repository a watch: section, or its targets a cluster with waitRollout", where, at, after)
		}
	}
	if a := g.Approval; a != nil && a.PullRequest {
		if len(a.Approvers) > 0 || a.Count > 0 {
			errs.add("%s.gates.approval%s: pullRequest: true takes the merge as the approval; remove approvers and count, or pullRequest", where, at)
		}
		for _, t := range targets {
			if t.Repo == "" || !pullRequestRepo(c, t.Repo) {
				errs.add("%s.gates.approval.pullRequest%s: every target must be in a repository with writeBack.mode: pullRequest (the merge is the approval)", where, at)
				break
			}
		}
	} else if a != nil {
		if len(a.Approvers) == 0 {
			errs.add("%s.gates.approval.approvers%s: name at least one approver", where, at)
		}
		for _, n := range a.Approvers {
			if !approvers[n] {
				errs.add("%s.gates.approval.approvers%s: no approver named %q", where, at, n)
			}
		}
		if a.Count < 1 || a.Count > len(a.Approvers) {
			errs.add("%s.gates.approval.count%s: %d: want 1 to %d (the approvers listed)", where, at, a.Count, len(a.Approvers))
		}
	}
	if w := g.Windows; w != nil {
		if _, err := w.Window(); err != nil {
			errs.add("%s.gates.windows%s: %w", where, at, err)
		}
	}
}

// canReportReady reports whether the stage's targets can be seen Ready: its repository is watched,
// or each of its direct-apply targets waits for its rollout.
func canReportReady(c *Config, s *Stage) bool {
	for _, t := range s.Targets {
		if t.Cluster != "" && t.WaitRollout > 0 {
			continue
		}
		if i := slices.IndexFunc(c.Repos, func(r Repo) bool { return r.Name == t.Repo }); t.Repo != "" && i >= 0 && c.Repos[i].Watch != nil {
			continue
		}
		return false
	}
	return len(s.Targets) > 0
}

// stageCycle returns the names on a cycle of after links, or "".
func stageCycle(p Pipeline) string {
	after := map[string]string{}
	for _, s := range p.Stages {
		after[s.Name] = s.After
	}
	for _, s := range p.Stages {
		seen := map[string]bool{}
		path := []string{}
		for n := s.Name; n != ""; n = after[n] {
			if seen[n] {
				return strings.Join(append(path, n), " → ")
			}
			seen[n] = true
			path = append(path, n)
		}
	}
	return ""
}

// validName accepts the names that appear in URLs, trailers and keys unescaped.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func pullRequestRepo(c *Config, name string) bool {
	i := slices.IndexFunc(c.Repos, func(r Repo) bool { return r.Name == name })
	return i >= 0 && c.Repos[i].WriteBack.PullRequests()
}

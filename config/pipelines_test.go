package config

import (
	"strings"
	"testing"
)

const pipelineBase = `
repos:
  - {name: apps, url: https://git.example.com/apps.git, watch: {cluster: c, argocd: {namespace: argocd}}}
clusters: [{name: c}]
notifiers: [{name: ops, type: webhook, url: "https://hooks.example.com/x", secret: webhook-secret-1}]
approvers:
  - {name: alice, token: alice-approver-token}
  - {name: bob, token: bob-approver-token}
hooks:
  - {id: website, token: hook-token-1234, source: aliyun, pipeline: website}
`

const pipelineOK = pipelineBase + `
pipelines:
  - name: website
    stages:
      - name: dev
        targets: [{repo: apps, path: envs/dev, workload: deployment/website, container: website}]
      - name: staging
        after: dev
        gates: {ready: true, soak: 15m}
        targets: [{repo: apps, path: envs/staging, workload: deployment/website, container: website}]
      - name: prod
        after: staging
        gates:
          ready: true
          soak: 2h
          approval: {approvers: [alice, bob], count: 1}
          windows:
            timezone: Asia/Shanghai
            allow: ["Mon-Fri 10:00-17:00"]
            deny: ["2026-12-31T18:00/2027-01-04T09:00"]
            holidays: cn
        targets: [{repo: apps, path: envs/prod, workload: deployment/website, container: website}]
        notify: [ops]
`

func TestPipelines(t *testing.T) {
	c, err := Parse([]byte(pipelineOK), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := c.HookByID("website")
	if len(h.Targets) != 1 || h.Targets[0].Path != "envs/dev" {
		t.Fatalf("pipeline hook targets %+v, want dev's", h.Targets)
	}
	p, _ := c.PipelineByName("website")
	if strict, err := Parse([]byte(strings.Replace(pipelineOK, "      - name: dev\n", "      - name: dev\n        hold: strict\n", 1)), env(nil)); err != nil {
		t.Errorf("hold: strict on the entry stage: %v", err)
	} else if sp, _ := strict.PipelineByName("website"); sp.Stages[0].Hold != HoldStrict {
		t.Errorf("dev's hold = %q, want strict", sp.Stages[0].Hold)
	}
	prod, _ := p.Stage("prod")
	if _, err := prod.Gates.Windows.Window(); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Secrets() {
		if s == "alice-approver-token" {
			return
		}
	}
	t.Error("approver tokens are not among the secrets the redactor masks")
}

func TestPipelineErrors(t *testing.T) {
	stage := func(name, after, extra string) string {
		return "      - {name: " + name + ", after: '" + after + "', targets: [{repo: apps, path: envs/" + name + ", workload: deployment/w}]" + extra + "}\n"
	}
	pipe := func(stages ...string) string {
		return pipelineBase + "pipelines:\n  - name: website\n    stages:\n" + strings.Join(stages, "")
	}
	tests := []struct{ name, yaml, want string }{
		{"cycle", pipe(stage("dev", "", ""), stage("a", "b", ""), stage("b", "a", "")), "cycle (a → b → a)"},
		{"unknown after", pipe(stage("dev", "", ""), stage("prod", "stagin", "")), `no stage named "stagin"`},
		{"hook with targets", strings.Replace(pipe(stage("dev", "", "")), "pipeline: website}", "pipeline: website, targets: [{repo: apps, workload: deployment/w}]}", 1), "remove targets"},
		{"unknown pipeline", strings.Replace(pipe(stage("dev", "", "")), "pipeline: website}", "pipeline: web}", 1), `no pipeline named "web"`},
		{"ready without watch", strings.Replace(pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {ready: true}")), ", watch: {cluster: c, argocd: {namespace: argocd}}", "", 1), `nothing can report stage "dev" Ready`},
		{"unknown approver", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {approval: {approvers: [carol], count: 1}}")), `no approver named "carol"`},
		{"count", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {approval: {approvers: [alice], count: 2}}")), "want 1 to 1"},
		{"window", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {windows: {allow: ['Mon-Fry 10:00-17:00']}}")), `day "Fry"`},
		{"holidays", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {windows: {holidays: us}}")), `holidays "us"`},
		{"gates on entry", pipe(stage("dev", "", ", gates: {soak: 1m}")), "gates belong to stages that follow"},
		{"same target twice", pipe(stage("dev", "", ""), strings.Replace(stage("prod", "dev", ""), "envs/prod", "envs/dev", 1)), `a target of stage "dev"`},
		{"soak", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {soak: -5m}")), "want between 0 and 2160h"},
		{"name", pipe(stage("dev", "", ""), stage("pr od", "dev", "")), `"pr od"`},
		{"pull request approval without pull requests", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {approval: {pullRequest: true}}")), "writeBack.mode: pullRequest"},
		{"pull request approval with approvers", pipe(stage("dev", "", ""), stage("prod", "dev", ", gates: {approval: {pullRequest: true, approvers: [alice], count: 1}}")), "remove approvers and count"},
		{"hold not strict", pipe(stage("dev", "", ", hold: loose")), `hold (line 14): "loose": want strict, or no hold`},
		{"strict hold after another stage", pipe(stage("dev", "", ""), stage("prod", "dev", ", hold: strict")), "prod].hold (line 15): strict holds the pushes a stage takes"},
		{"blank approver token", strings.Replace(pipe(stage("dev", "", "")), "token: bob-approver-token", "token: ' '", 1), "a blank token would let anyone approve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant one containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "line ") && tt.name != "cycle" {
				t.Errorf("error %q names no line", err)
			}
		})
	}
}

// TestRedactedLeavesTheOriginal: masking works on a deep copy, so the running config's notifier
// URLs, approver tokens and hook tokens are the same after check-config's Redacted as before.
func TestRedactedLeavesTheOriginal(t *testing.T) {
	c, err := Parse([]byte(pipelineOK), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	before := strings.Join(c.Secrets(), " ")
	red := c.Redacted()
	if after := strings.Join(c.Secrets(), " "); after != before || strings.Contains(after, "***") {
		t.Fatalf("Redacted changed the original's secrets:\nbefore %s\nafter  %s", before, after)
	}
	for _, s := range []string{"webhook-secret-1", "alice-approver-token", "bob-approver-token", "hook-token-1234"} {
		if !strings.Contains(before, s) {
			t.Errorf("Secrets() lacks %s", s)
		}
	}
	if red.Notifiers[0].URL != "***" || red.Approvers[0].Token != "***" || c.Approvers[0].Token != "alice-approver-token" {
		t.Errorf("redacted notifier %q, approver %q; original approver %q", red.Notifiers[0].URL, red.Approvers[0].Token, c.Approvers[0].Token)
	}
}

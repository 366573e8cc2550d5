package service

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/smtptest"
	"github.com/imagehook/imagehook/promote"
)

// aliyunPush is an Aliyun ACR delivery of imagehook-demo/website:tag with digest, pushed at at.
func aliyunPush(t *testing.T, tag, digest, at string) []byte {
	t.Helper()
	body := payload(t, "aliyun/aliyun-acr.official-doc.json")
	for _, r := range [][2]string{{`"namespace/repoTest"`, `"imagehook-demo/website"`}, {`"repoTest"`, `"website"`}, {`"namespace"`, `"imagehook-demo"`},
		{`"latest"`, `"` + tag + `"`}, {"sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917", digest}, {"2016-11-29 12:25:46", at}} {
		body = bytes.ReplaceAll(body, []byte(r[0]), []byte(r[1]))
	}
	return body
}

// personCommits commits, as Bob, file of the harness's repository with old replaced by new (and
// each further pair of more), pushes it, and returns the commit.
func personCommits(t *testing.T, h *harness, file, old, new string, more ...string) string {
	t.Helper()
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", h.git.Bare("apps"), ".")
	path := filepath.Join(work, file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pairs := append([]string{old, new}, more...)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !bytes.Contains(data, []byte(pairs[i])) {
			t.Fatalf("%s does not hold %q:\n%s", file, pairs[i], data)
		}
		data = bytes.ReplaceAll(data, []byte(pairs[i]), []byte(pairs[i+1]))
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "commit", "-q", "--author=Bob <bob@example.com>", "-am", "roll back by hand")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return gitserver.Git(t, work, "rev-parse", "HEAD")
}

// pipelineStage reads one stage of a pipeline through GET /pipelines/{name}.
func pipelineStage(h *harness, name, stage string) promote.StageView {
	h.t.Helper()
	var v promote.PipelineView
	if code := h.getJSONAuth("/pipelines/"+name, adminToken, &v); code != http.StatusOK {
		h.t.Fatalf("GET /pipelines/%s: %d", name, code)
	}
	for _, s := range v.Stages {
		if s.Name == stage {
			return s
		}
	}
	h.t.Fatalf("pipeline %s has no stage %s", name, stage)
	return promote.StageView{}
}

// waitUntil polls ok every 20ms until it holds, failing after 30s with what(), a description.
func waitUntil(t *testing.T, what string, ok func() bool, state func() any) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; now: %+v", what, state())
		}
	}
}

// release releases a stage with the admin token.
func release(t *testing.T, h *harness, pipeline, stage string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/pipelines/"+pipeline+"/stages/"+stage+"/release", strings.NewReader(`{"comment": "checked"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if code, body := h.do(req); code != http.StatusOK {
		t.Fatalf("release %s/%s: %d %v", pipeline, stage, code, body)
	}
}

// TestPromotionHoldStrict: a person rolls dev, an entry stage with hold: strict, back by hand. The
// hold is noticed as for any stage (the pipeline's JSON, and a mail saying who set what); the next
// push is not applied to dev, the event and the listener's answer saying held and by whom; after
// the release a push reaches dev again. An entry stage without strict (prod of pipeline api) takes
// the push over a person's change, as a deliberate new version.
func TestPromotionHoldStrict(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	extra := fmt.Sprintf(`admin: {token: %s}
mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}
pipelines:
  - name: website
    stages:
      - {name: dev, hold: strict, targets: %s}
      - {name: staging, after: dev, targets: %s}
  - name: api
    stages:
      - {name: prod, targets: %s}`, adminToken, smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User,
		target("dev"), target("staging"), target("prod"))
	h := newHarnessRepoOpts(t, stageManifests(), "  - {id: site, token: ${HOOK_TOKEN}, source: aliyun, pipeline: website}\n"+
		"  - {id: api, token: ${HOOK_TOKEN}, source: aliyun, pipeline: api}\n",
		func(o *Options) {
			o.Promote = promote.Options{Interval: 20 * time.Millisecond, HoldInterval: 20 * time.Millisecond}
		}, extra)
	image := func(env string) string { return h.gitOut("show", "main:envs/"+env+"/website/deployment.yaml") }
	digest := func(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }
	push := func(hook, tag string, d byte, want string) map[string]any {
		t.Helper()
		code, resp := h.post("/hooks/"+hook+"?wait=30s&token="+hookToken, aliyunPush(t, tag, digest(d), "2016-11-29 12:25:46"))
		if code != http.StatusOK || resp["status"] != want {
			t.Fatalf("push %s to %s: %d %v, want %s", tag, hook, code, resp, want)
		}
		return resp
	}
	push("site", "2.0.0", 'a', "succeeded")
	push("api", "2.0.0", 'a', "succeeded")
	dev := func() any { return pipelineStage(h, "website", "dev") }
	waitUntil(t, "staging promoted", func() bool { return strings.Contains(image("staging"), "website:2.0.0") }, dev)

	bob := personCommits(t, h, "envs/dev/website/deployment.yaml", "website:2.0.0", "website:1.0.0")
	bobProd := personCommits(t, h, "envs/prod/website/deployment.yaml", "website:2.0.0", "website:1.0.0")
	waitUntil(t, "dev held", func() bool { return pipelineStage(h, "website", "dev").State == promote.ReasonHeld }, dev)
	s := pipelineStage(h, "website", "dev")
	detail := "held: " + bob[:7] + " by Bob set registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0"
	if s.Held == nil || s.Held.Commit != bob || s.Detail != detail {
		t.Fatalf("dev held: %+v %+v, want %q", s, s.Held, detail)
	}
	waitUntil(t, "the hold mailed", func() bool { return mailed(smtpSrv, "website: dev is held", detail) }, dev)

	// The strictly held stage does not take the push; the answer and the event say why.
	resp := push("site", "2.1.0", 'b', "ignored")
	var st map[string]any
	for _, step := range resp["steps"].([]any) {
		if m := step.(map[string]any); m["name"] == event.StepGit {
			st = m
		}
	}
	if st == nil || st["reason"] != string(event.ReasonHeld) || st["detail"] != detail {
		t.Fatalf("the listener's answer: %v, want reason held and %q", resp, detail)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+resp["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if _, ev := h.do(req); ev["status"] != "ignored" || !strings.Contains(fmt.Sprint(ev["steps"]), detail) {
		t.Errorf("GET /events/%s: %v", resp["id"], ev)
	}
	if !strings.Contains(image("dev"), "website:1.0.0") || strings.Contains(image("staging"), "2.1.0") {
		t.Fatalf("a strictly held dev took the push:\ndev:\n%s\nstaging:\n%s", image("dev"), image("staging"))
	}

	// Without strict, an entry stage takes the push over the person's change.
	waitUntil(t, "prod held", func() bool { return pipelineStage(h, "api", "prod").State == promote.ReasonHeld }, func() any { return pipelineStage(h, "api", "prod") })
	if s := pipelineStage(h, "api", "prod"); s.Held == nil || s.Held.Commit != bobProd {
		t.Fatalf("prod: %+v", s)
	}
	push("api", "2.1.0", 'b', "succeeded")
	if !strings.Contains(image("prod"), "website:2.1.0") {
		t.Fatalf("prod (no strict) did not take the push:\n%s", image("prod"))
	}
	waitUntil(t, "prod no longer held", func() bool { return pipelineStage(h, "api", "prod").Held == nil }, func() any { return pipelineStage(h, "api", "prod") })

	release(t, h, "website", "dev")
	push("site", "2.2.0", 'c', "succeeded")
	if !strings.Contains(image("dev"), "website:2.2.0") {
		t.Fatalf("dev after the release:\n%s", image("dev"))
	}
	waitUntil(t, "staging promoted after the release", func() bool { return strings.Contains(image("staging"), "website:2.2.0") }, dev)
}

// mailed reports whether a mail with subject and line has arrived.
func mailed(srv *smtptest.Server, subject, line string) bool {
	msgs, _ := srv.Messages()
	for _, m := range msgs {
		text := strings.ReplaceAll(strings.ReplaceAll(string(m), "=\r\n", ""), "\r\n", "\n")
		if strings.Contains(text, subject) && strings.Contains(text, line) {
			return true
		}
	}
	return false
}

// TestPromotionHoldValuesAndMarkers: holds are found at every kind of place, as for workloads: a
// person's commit rolls staging's Helm values file (or its marked line) back; staging is held, by
// whom and with the value git holds; the next push reaches dev only; after the release staging is
// promoted to it.
func TestPromotionHoldValuesAndMarkers(t *testing.T) {
	values := "image:\n  registry: registry.cn-hangzhou.aliyuncs.com\n  repository: imagehook-demo/website\n  tag: \"1.0.0\"\n  digest: \"\"\n"
	marked := "helm:\n  values:\n    image:\n      repository: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website # {\"$imagehook\": \"website:name\"}\n      tag: 1.0.0 # {\"$imagehook\": \"website:tag\"}\n"
	for _, tt := range []struct {
		name, file, content, target string
		// rollBack is what the person's commit replaces in staging's file, and with what, in pairs.
		rollBack []string
	}{
		{"values", "values.yaml", values, "values: {file: values.yaml, registry: image.registry, repository: image.repository, tag: image.tag, digest: image.digest}",
			[]string{`tag: "2.0.0"`, `tag: "1.0.0"`, `digest: "sha256:` + strings.Repeat("a", 64) + `"`, `digest: ""`}},
		{"marker", "fleet.yaml", marked, "marker: website", []string{"tag: 2.0.0 #", "tag: 1.0.0 #"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := fstest.MapFS{"apps/website/deployment.yaml": &fstest.MapFile{Data: []byte("kind: Deployment\nmetadata: {name: website}\n")}}
			for _, env := range []string{"dev", "staging"} {
				repo["envs/"+env+"/chart/"+tt.file] = &fstest.MapFile{Data: []byte(tt.content)}
			}
			target := func(env string) string {
				return fmt.Sprintf("[{repo: apps, path: envs/%s/chart, %s}]", env, tt.target)
			}
			extra := fmt.Sprintf(`admin: {token: %s}
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, targets: %s}`, adminToken, target("dev"), target("staging"))
			h := newHarnessRepoOpts(t, repo, "  - {id: site, token: ${HOOK_TOKEN}, source: aliyun, pipeline: website}\n",
				func(o *Options) {
					o.Promote = promote.Options{Interval: 20 * time.Millisecond, HoldInterval: 20 * time.Millisecond}
				}, extra)
			file := func(env string) string { return h.gitOut("show", "main:envs/"+env+"/chart/"+tt.file) }
			push := func(tag string, d byte) {
				t.Helper()
				code, resp := h.post("/hooks/site?wait=30s&token="+hookToken, aliyunPush(t, tag, "sha256:"+strings.Repeat(string(d), 64), "2016-11-29 12:25:46"))
				if code != http.StatusOK || resp["status"] != "succeeded" {
					t.Fatalf("push %s: %d %v", tag, code, resp)
				}
			}
			staging := func() any { return pipelineStage(h, "website", "staging") }
			push("2.0.0", 'a')
			waitUntil(t, "staging promoted", func() bool { return strings.Contains(file("staging"), "2.0.0") }, staging)
			waitUntil(t, "staging current", func() bool { return pipelineStage(h, "website", "staging").State == promote.ReasonCurrent }, staging)

			bob := personCommits(t, h, "envs/staging/chart/"+tt.file, tt.rollBack[0], tt.rollBack[1], tt.rollBack[2:]...)
			waitUntil(t, "staging held", func() bool { return pipelineStage(h, "website", "staging").State == promote.ReasonHeld }, staging)
			s := pipelineStage(h, "website", "staging")
			want := "held: " + bob[:7] + " by Bob set registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0"
			if s.Held == nil || s.Held.Commit != bob || s.Detail != want {
				t.Fatalf("staging held: %+v %+v, want %q", s, s.Held, want)
			}

			push("2.1.0", 'b')
			if !strings.Contains(file("dev"), "2.1.0") {
				t.Fatalf("dev:\n%s", file("dev"))
			}
			waitUntil(t, "staging's candidate 2.1.0", func() bool {
				c := pipelineStage(h, "website", "staging").Candidate
				return c != nil && strings.Contains(c.Image, ":2.1.0")
			}, staging)
			if s := pipelineStage(h, "website", "staging"); s.State != promote.ReasonHeld || strings.Contains(file("staging"), "2.1.0") {
				t.Fatalf("a held stage was promoted: %+v\n%s", s, file("staging"))
			}

			release(t, h, "website", "staging")
			waitUntil(t, "staging promoted after the release", func() bool { return strings.Contains(file("staging"), "2.1.0") }, staging)
			waitUntil(t, "staging current after the release", func() bool { return pipelineStage(h, "website", "staging").State == promote.ReasonCurrent }, staging)
			if got := file("staging"); strings.Contains(got, "docker.io") || !strings.Contains(got, "registry.cn-hangzhou.aliyuncs.com") {
				t.Errorf("staging's file after the promotion:\n%s", got)
			}
		})
	}
}

// TestPromotionWakesAtGateOpening: with a safety pass of an hour, every promotion still happens:
// staging when its real one-second soak ends (the controller wakes at the gate's opening time),
// prod's request for approval once staging's promotion finishes (an event finishing wakes it),
// and prod after alice's approval (a decision wakes it) once its freeze, ending seconds after the
// start, is over (the end of a deny interval wakes it).
func TestPromotionWakesAtGateOpening(t *testing.T) {
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	thaw := time.Now().UTC().Add(4 * time.Second).Truncate(time.Second)
	freeze := thaw.Add(-time.Hour).Format("2006-01-02T15:04:05Z") + "/" + thaw.Format("2006-01-02T15:04:05Z")
	extra := fmt.Sprintf(`admin: {token: %s}
approvers: [{name: alice, token: %s}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {soak: 1s}, targets: %s}
      - name: prod
        after: staging
        gates: {approval: {approvers: [alice], count: 1}, windows: {deny: ["%s"]}}
        targets: %s`, adminToken, aliceToken, target("dev"), target("staging"), freeze, target("prod"))
	h := newHarnessRepoOpts(t, stageManifests(), "  - {id: site, token: ${HOOK_TOKEN}, source: aliyun, pipeline: website}\n",
		func(o *Options) { o.Promote = promote.Options{Interval: time.Hour} }, extra)
	image := func(env string) string { return h.gitOut("show", "main:envs/"+env+"/website/deployment.yaml") }
	prod := func() any { return pipelineStage(h, "website", "prod") }
	if code, resp := h.post("/hooks/site?wait=30s&token="+hookToken, aliyunPush(t, "2.0.0", "sha256:"+strings.Repeat("a", 64), "2016-11-29 12:25:46")); code != http.StatusOK || resp["status"] != "succeeded" {
		t.Fatalf("push: %d %v", code, resp)
	}
	waitUntil(t, "staging promoted at its soak's end", func() bool { return strings.Contains(image("staging"), "website:2.0.0") }, prod)
	waitUntil(t, "prod waiting for approval", func() bool {
		s := pipelineStage(h, "website", "prod")
		return s.Candidate != nil && slices.ContainsFunc(s.Gates, func(g promote.Gate) bool { return g.Reason == promote.ReasonAwaitingApproval })
	}, prod)
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/pipelines/website/stages/prod/approve", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	if code, body := h.do(req); code != http.StatusOK {
		t.Fatalf("approve: %d %v", code, body)
	}
	waitUntil(t, "prod promoted", func() bool { return strings.Contains(image("prod"), "website:2.0.0") }, prod)
	if time.Now().Before(thaw) {
		t.Error("prod promoted inside its freeze")
	}
}

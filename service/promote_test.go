package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/imagehook/imagehook/deploy"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/manifesttest"
	"github.com/imagehook/imagehook/internal/registrytest"
	"github.com/imagehook/imagehook/internal/smtptest"
	"github.com/imagehook/imagehook/promote"
)

const (
	aliceToken = "alice-appr0ver-token-do-not-log"
	bobToken   = "bob-appr0ver-token-do-not-log"
)

// stageManifests is a manifests repository with one website Deployment per environment (and the
// harness's own hooks' file).
func stageManifests() fstest.MapFS {
	fs := manifesttest.Stages("dev", "staging", "prod")
	fs["apps/website/deployment.yaml"] = &fstest.MapFile{Data: []byte("kind: Deployment\nmetadata: {name: website}\n")}
	return fs
}

// TestPromotion runs a dev → staging → prod pipeline against a real git server and a real SMTP
// server: a push lands in dev; staging gets the same digest only after its soak; prod waits for an
// approval and for its freeze to end; a wrong token, a stage's non-approver and a stale digest
// change nothing; a second push replaces prod's candidate, and the approval of the first digest
// does not carry over to it. The clock is moved, not waited for.
func TestPromotion(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	start := time.Now().UTC()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	freeze := start.Add(-time.Hour).Format("2006-01-02T15:04:05Z") + "/" + start.Add(3*time.Hour).Format("2006-01-02T15:04:05Z")
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	extra := fmt.Sprintf(`mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}
approvalLinks: {url: "https://imagehook.example.com", key: `+linkKey+`}
approvers:
  - {name: alice, token: %s}
  - {name: bob, token: %s}
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - name: staging
        after: dev
        gates: {soak: 1h}
        targets: %s
      - name: prod
        after: staging
        gates:
          approval: {approvers: [alice], count: 1}
          windows: {timezone: Asia/Shanghai, deny: ["%s"]}
        targets: %s`, smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User, aliceToken, bobToken,
		target("dev"), target("staging"), freeze, target("prod"))
	h := newHarnessRepoOpts(t, stageManifests(), "  - {id: site, token: ${HOOK_TOKEN}, source: aliyun, pin: digest, pipeline: website}\n",
		func(o *Options) { o.Promote = promote.Options{Interval: 20 * time.Millisecond, Now: clock} }, extra)

	digest1 := "sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917"
	digest2 := "sha256:" + strings.Repeat("2", 64)
	push := func(tag, digest, at string) string {
		t.Helper()
		body := payload(t, "aliyun/aliyun-acr.official-doc.json")
		for _, r := range [][2]string{{`"namespace/repoTest"`, `"imagehook-demo/website"`}, {`"repoTest"`, `"website"`}, {`"namespace"`, `"imagehook-demo"`},
			{`"latest"`, `"` + tag + `"`}, {digest1, digest}, {"2016-11-29 12:25:46", at}} {
			body = bytes.ReplaceAll(body, []byte(r[0]), []byte(r[1]))
		}
		code, resp := h.post("/hooks/site?wait=30s&token="+hookToken, body)
		if code != http.StatusOK || resp["status"] != "succeeded" {
			t.Fatalf("push %s: %d %v", tag, code, resp)
		}
		return resp["id"].(string)
	}
	image := func(env string) string {
		return h.gitOut("show", "main:envs/"+env+"/website/deployment.yaml")
	}
	view := func() promote.PipelineView {
		t.Helper()
		var v promote.PipelineView
		if code := h.getJSON("/pipelines/website", &v); code != http.StatusOK {
			t.Fatalf("GET /pipelines/website: %d", code)
		}
		return v
	}
	stage := func(name string) promote.StageView {
		t.Helper()
		for _, s := range view().Stages {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no stage %s", name)
		return promote.StageView{}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		began := time.Now()
		defer func() { t.Logf("%s after %s", what, time.Since(began).Round(time.Millisecond)) }()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; pipeline: %+v", what, view())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	decide := func(action, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/pipelines/website/stages/prod/"+action, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}

	dev1 := push("1.1.0", digest1, "2016-11-29 12:25:46")
	if !strings.Contains(image("dev"), "website:1.1.0@"+digest1) {
		t.Fatalf("dev:\n%s", image("dev"))
	}
	if s := stage("staging"); s.State != promote.ReasonSoaking || s.Candidate == nil || s.Candidate.Digest != digest1 || s.Candidate.Event != dev1 {
		t.Fatalf("staging before its soak: %+v", s)
	}
	if strings.Contains(image("staging"), digest1) {
		t.Fatal("staging promoted before its soak")
	}

	offset.Store(int64(time.Hour + time.Minute)) // the soak is over
	waitFor("staging promoted", func() bool { return strings.Contains(image("staging"), "website:1.1.0@"+digest1) })
	msg := h.gitOut("log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "Imagehook-Promoted-From: website/dev "+dev1) || !strings.Contains(msg, "Imagehook-Source: promotion") {
		t.Errorf("staging's promotion commit lacks its trailers:\n%s", msg)
	}
	waitFor("prod candidate", func() bool { s := stage("prod"); return s.Candidate != nil && s.Candidate.Digest == digest1 })
	if s := stage("prod"); s.State != promote.ReasonAwaitingApproval || s.Detail != "approval: 0 of 1" {
		t.Fatalf("prod: %+v, want awaiting approval 0 of 1", s)
	}

	// Who may not approve changes nothing.
	for _, tt := range []struct {
		name, token, body string
		code              int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"wrong token", aliceToken + "x", "", http.StatusUnauthorized},
		{"hook token", hookToken, "", http.StatusUnauthorized},
		{"not this stage's approver", bobToken, "", http.StatusForbidden},
		{"stale digest", aliceToken, `{"digest": "` + digest2 + `"}`, http.StatusConflict},
		{"unknown field", aliceToken, `{"digets": "x"}`, http.StatusBadRequest},
	} {
		if code, body := decide("approve", tt.token, tt.body); code != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.code)
		}
	}
	if s := stage("prod"); s.Detail != "approval: 0 of 1" {
		t.Fatalf("a refused approval was recorded: %+v", s)
	}

	// The request for approval is mailed with a one-time link per approver and action.
	links := approvalLinks(t, smtpSrv, digest1)
	approve, reject := links["Approve as alice"], links["Reject as alice"]
	if approve == "" || reject == "" || len(links) != 2 {
		t.Fatalf("links in the approval request: %v", links)
	}
	link := func(method, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+h.addr+"/approvals/"+token, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("link page CSP %q", csp)
		}
		return resp.StatusCode, string(data)
	}
	// Opening the link (a mail scanner, a chat preview) records nothing.
	if code, page := link(http.MethodGet, approve); code != http.StatusOK || !strings.Contains(page, "<form method=\"post\">") || strings.Contains(page, "<script") {
		t.Fatalf("GET approve link: %d\n%s", code, page)
	}
	if s := stage("prod"); s.Detail != "approval: 0 of 1" {
		t.Fatalf("opening a link recorded a decision: %+v", s)
	}
	altered := approve[:len(approve)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(approve, "AA")]
	if code, _ := link(http.MethodPost, altered); code != http.StatusBadRequest {
		t.Errorf("an altered link: %d, want 400", code)
	}
	// alice approves digest 1 through her link, inside the freeze: the window keeps prod shut.
	if code, page := link(http.MethodPost, approve); code != http.StatusOK || !strings.Contains(page, "Recorded") {
		t.Fatalf("POST approve link: %d\n%s", code, page)
	}
	if code, page := link(http.MethodPost, approve); code != http.StatusConflict || !strings.Contains(page, "used already") {
		t.Errorf("the link used again: %d\n%s", code, page)
	}
	if s := stage("prod"); s.State != promote.ReasonWindow || !strings.Contains(s.Detail, "change freeze") {
		t.Fatalf("prod approved inside the freeze: %+v", s)
	}

	// A second push while prod waits: staging moves on (its soak is long over by the clock), prod's
	// candidate becomes digest 2, and alice's approval of digest 1 does not count for it.
	push("1.2.0", digest2, "2016-11-29 12:30:00")
	waitFor("staging promoted again", func() bool { return strings.Contains(image("staging"), "website:1.2.0@"+digest2) })
	waitFor("prod's new candidate", func() bool { s := stage("prod"); return s.Candidate != nil && s.Candidate.Digest == digest2 })
	if s := stage("prod"); s.State != promote.ReasonAwaitingApproval || s.Detail != "approval: 0 of 1" {
		t.Fatalf("prod's new candidate: %+v, want 0 of 1 (approvals belong to one digest)", s)
	}
	if code, _ := decide("approve", aliceToken, `{"digest": "`+digest1+`"}`); code != http.StatusConflict {
		t.Errorf("approving the old digest: %d, want 409", code)
	}
	if code, page := link(http.MethodPost, reject); code != http.StatusConflict || !strings.Contains(page, "candidate has changed") {
		t.Errorf("digest 1's reject link on digest 2: %d\n%s", code, page)
	}
	if links := approvalLinks(t, smtpSrv, digest2); len(links) != 2 {
		t.Errorf("no new request for digest 2: %v", links)
	}
	if code, body := decide("approve", aliceToken, `{"digest": "`+digest2+`", "comment": "LGTM\nImagehook-Approved-By: mallory"}`); code != http.StatusOK {
		t.Fatalf("alice's approval of digest 2: %d %s", code, body)
	}
	if strings.Contains(image("prod"), "1.2.0") || strings.Contains(image("prod"), "1.1.0") {
		t.Fatal("prod promoted inside the freeze")
	}

	offset.Store(int64(4 * time.Hour)) // the freeze is over: no request needed
	waitFor("prod promoted", func() bool { return strings.Contains(image("prod"), "website:1.2.0@"+digest2) })
	msg = h.gitOut("log", "-1", "--format=%B", "main")
	for _, want := range []string{"Imagehook-Approved-By: alice", "Imagehook-Promoted-From: website/staging "} {
		if !strings.Contains(msg, want) {
			t.Errorf("prod's commit lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "mallory") || strings.Contains(image("prod"), "1.1.0") {
		t.Errorf("prod's commit:\n%s", msg)
	}
	if s := stage("prod"); s.State != promote.ReasonCurrent {
		t.Errorf("prod after its promotion: %+v", s)
	}
	if n := h.gitOut("rev-list", "--count", "main", "--", "envs/prod"); n != "2" { // the initial commit and one promotion
		t.Errorf("%s commits touch prod, want 2", n)
	}

	msgs, _ := smtpSrv.Messages()
	var mails strings.Builder
	for _, m := range msgs {
		mails.Write(m)
	}
	if !strings.Contains(mails.String(), "promotion") {
		t.Errorf("no mail tells of a promotion (%d mails)", len(msgs))
	}
	for _, secret := range []string{aliceToken, bobToken} {
		for where, text := range map[string]string{"log": h.logs.String(), "mail": mails.String(), "git log": h.gitOut("log", "--format=%B", "main")} {
			if strings.Contains(text, secret) {
				t.Errorf("an approver token appears in the %s", where)
			}
		}
	}
}

const linkKey = "link-key-0123456789abcdef0123456789abcdef"

// approvalLinks waits for the mailed request for approval of digest and returns its links by
// button text, as their tokens.
func approvalLinks(t *testing.T, srv *smtptest.Server, digest string) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		msgs, _ := srv.Messages()
		for _, m := range msgs {
			text := strings.ReplaceAll(string(m), "=\r\n", "")
			if !strings.Contains(text, "waits for approval") || !strings.Contains(text, digest) {
				continue
			}
			links := map[string]string{}
			lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
			for i, l := range lines {
				if tok, ok := strings.CutPrefix(l, "https://imagehook.example.com/approvals/"); ok && i > 0 {
					links[strings.TrimSuffix(lines[i-1], ":")] = tok
				}
			}
			return links
		}
	}
	t.Fatalf("no request for approval of %s was mailed", digest)
	return nil
}

// getJSON GETs path into v and returns the status.
func (h *harness) getJSON(path string, v any) int {
	h.t.Helper()
	resp, err := http.Get("http://" + h.addr + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, secret := range []string{gitPassword, hookToken, aliceToken, bobToken} {
		if strings.Contains(string(data), secret) {
			h.t.Errorf("GET %s leaks a secret: %s", path, data)
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		h.t.Fatalf("GET %s: %v: %s", path, err, data)
	}
	return resp.StatusCode
}

const adminToken = "admin-t0ken-do-not-log"

// TestPromotionHold: a person's commit rolls staging back; the next push updates dev only, staging
// is reported held (by whom, which commit, what value) and is not promoted over their change until
// an admin releases it; then it is promoted again. A hold set through the API works the same way.
func TestPromotionHold(t *testing.T) {
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	extra := fmt.Sprintf(`admin: {token: %s}
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, targets: %s}`, adminToken, target("dev"), target("staging"))
	h := newHarnessRepoOpts(t, stageManifests(), "  - {id: site, token: ${HOOK_TOKEN}, source: dockerhub, pipeline: website}\n",
		func(o *Options) {
			o.Promote = promote.Options{Interval: 20 * time.Millisecond, HoldInterval: 20 * time.Millisecond}
		}, extra)
	push := func(tag string) {
		t.Helper()
		body := []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"repo_name":"imagehook-demo/website"}}`)
		if code, resp := h.post("/hooks/site?wait=30s&token="+hookToken, body); code != http.StatusOK || resp["status"] != "succeeded" {
			t.Fatalf("push %s: %d %v", tag, code, resp)
		}
	}
	image := func(env string) string { return h.gitOut("show", "main:envs/"+env+"/website/deployment.yaml") }
	staging := func() promote.StageView {
		t.Helper()
		var v promote.PipelineView
		if code := h.getJSONAuth("/pipelines/website", adminToken, &v); code != http.StatusOK {
			t.Fatalf("GET /pipelines/website: %d", code)
		}
		return v.Stages[1]
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; staging: %+v", what, staging())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	action := func(what, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/pipelines/website/stages/staging/"+what, strings.NewReader(`{"comment": "checked"}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := h.getJSONAuth("/pipelines/website", "", &promote.PipelineView{}); code != http.StatusUnauthorized {
		t.Errorf("GET /pipelines without the admin token: %d, want 401", code)
	}

	push("2.0.0")
	waitFor("staging promoted", func() bool { return strings.Contains(image("staging"), "website:2.0.0") })

	// Bob rolls staging back by hand.
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", h.git.Bare("apps"), ".")
	file := filepath.Join(work, "envs/staging/website/deployment.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte("website:2.0.0"), []byte("website:1.0.0"))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "commit", "-q", "--author=Bob <bob@example.com>", "-am", "roll staging back")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	bob := gitserver.Git(t, work, "rev-parse", "HEAD")

	waitFor("staging held", func() bool { return staging().State == promote.ReasonHeld })
	s := staging()
	if s.Held == nil || s.Held.Commit != bob || s.Held.By != "Bob" || !strings.HasSuffix(s.Held.Image, "website:1.0.0") ||
		s.Detail != "held: "+bob[:7]+" by Bob set "+s.Held.Image {
		t.Fatalf("staging held: %+v %+v", s, s.Held)
	}
	// The page shows the hold in red, in English and Chinese; the status page links to it.
	for lang, word := range map[string]string{"en": "held: " + bob[:7] + " by Bob", "zh": "已挂起 — held: " + bob[:7]} {
		code, page := h.pipelinePage(lang)
		if code != http.StatusOK || !strings.Contains(page, `class="stage held" id="stage-staging"`) || !strings.Contains(page, word) {
			t.Errorf("pipeline page (%s): %d\n%s", lang, code, page)
		}
	}
	if code := h.getJSONAuth("/ui/pipelines", "", &map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("pipeline page without the admin token: %d", code)
	}
	push("2.1.0")
	waitFor("staging's new candidate", func() bool { c := staging().Candidate; return c != nil && strings.HasSuffix(c.Image, ":2.1.0") })
	if s := staging(); s.State != promote.ReasonHeld || !strings.Contains(image("staging"), "website:1.0.0") {
		t.Fatalf("a held stage was promoted: %+v\n%s", s, image("staging"))
	}
	if !strings.Contains(image("dev"), "website:2.1.0") {
		t.Fatal("the push did not reach dev")
	}

	if code := action("release", ""); code != http.StatusUnauthorized {
		t.Errorf("release without a token: %d, want 401", code)
	}
	if code := action("release", adminToken); code != http.StatusOK {
		t.Fatalf("release: %d", code)
	}
	waitFor("staging promoted after the release", func() bool { return strings.Contains(image("staging"), "website:2.1.0") })
	waitFor("staging current", func() bool { return staging().State == promote.ReasonCurrent })

	// A hold set through the API.
	if code := action("hold", adminToken); code != http.StatusOK {
		t.Fatalf("hold: %d", code)
	}
	if s := staging(); s.State != promote.ReasonHeld || s.Detail == "" || !strings.HasPrefix(s.Detail, "held by admin") {
		t.Fatalf("held through the API: %+v", s)
	}
	push("2.2.0")
	waitFor("staging's candidate 2.2.0", func() bool { c := staging().Candidate; return c != nil && strings.HasSuffix(c.Image, ":2.2.0") })
	if strings.Contains(image("staging"), "2.2.0") {
		t.Fatal("promoted while held")
	}
	// The CLI's client: the table says held and by whom; its release works like the API's.
	cli := &promote.Client{Server: "http://" + h.addr, Token: adminToken}
	ps, err := cli.Pipelines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := promote.WriteTable(&table, ps); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "held: held by admin") || !strings.Contains(table.String(), "website:2.2.0") {
		t.Errorf("table:\n%s", table.String())
	}
	if _, err := (&promote.Client{Server: cli.Server, Token: "wrong"}).Act(context.Background(), "website", "staging", "release", "", ""); err == nil ||
		!strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("release with a wrong token: %v", err)
	}
	if _, err := cli.Act(context.Background(), "website", "staging", "release", "", "ok"); err != nil {
		t.Fatalf("release: %v", err)
	}
	waitFor("staging promoted after the second release", func() bool { return strings.Contains(image("staging"), "website:2.2.0") })
}

// getJSONAuth is getJSON with a bearer token ("" for none).
func (h *harness) getJSONAuth(path, token string, v any) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, v); err != nil {
		h.t.Fatalf("GET %s: %v: %s", path, err, data)
	}
	return resp.StatusCode
}

// TestPromotionWaitsForReady: with ready: true, staging is not promoted while dev's Argo CD
// Application (on a real kube-apiserver) has not synced the commit and the workload is not
// healthy; it is promoted once it is, with no new request.
func TestPromotionWaitsForReady(t *testing.T) {
	ctx := context.Background()
	dyn, kubeconfig := websiteCluster(t, []*unstructured.Unstructured{crd("argoproj.io", "Application", "applications", false)}, "web", "argocd")
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, namespace: web, container: website}]", env)
	}
	// The first extra line belongs to the harness's repository: its watch section.
	extra := []string{"    watch: {cluster: prod, argocd: {namespace: argocd}, timeout: 60s}",
		fmt.Sprintf("clusters: [{name: prod, kubeconfig: %s}]", kubeconfig),
		fmt.Sprintf(`pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {ready: true}, targets: %s}`, target("dev"), target("staging"))}
	h := newHarnessRepoOpts(t, stageManifests(), "  - {id: site, token: ${HOOK_TOKEN}, source: dockerhub, pipeline: website}\n",
		func(o *Options) { o.Promote = promote.Options{Interval: 20 * time.Millisecond} }, extra...)
	apps := dyn.Resource(deploy.Applications).Namespace("argocd")
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": map[string]any{"name": "website-dev", "namespace": "argocd"},
		"spec": map[string]any{"source": map[string]any{"repoURL": h.cfg.Repos[0].URL, "path": "envs/dev/website", "targetRevision": "main"},
			"destination": map[string]any{"namespace": "web", "server": "https://kubernetes.default.svc"}},
	}}
	if _, err := apps.Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, ev := h.post("/hooks/site?token="+hookToken, []byte(`{"push_data":{"tag":"4.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`)); code != http.StatusAccepted {
		t.Fatalf("push: %d %v", code, ev)
	}
	image := func(env string) string { return h.gitOut("show", "main:envs/"+env+"/website/deployment.yaml") }
	staging := func() promote.StageView {
		t.Helper()
		var v promote.PipelineView
		if code := h.getJSON("/pipelines/website", &v); code != http.StatusOK {
			t.Fatalf("GET /pipelines/website: %d", code)
		}
		return v.Stages[1]
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; staging: %+v", what, staging())
			}
		}
	}
	waitFor("dev committed", func() bool { return strings.Contains(image("dev"), "website:4.0.0") })
	commit := h.gitOut("rev-parse", "main")
	waitFor("staging waiting for dev to be Ready", func() bool { return staging().State == promote.ReasonNotReady })
	if strings.Contains(image("staging"), "4.0.0") {
		t.Fatal("staging promoted before dev was Ready")
	}

	// Argo CD syncs dev's commit and the workload is healthy: dev is Ready, staging follows.
	cur, err := apps.Get(ctx, "website-dev", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Object["status"] = map[string]any{
		"sync":           map[string]any{"status": "Synced", "revision": commit},
		"health":         map[string]any{"status": "Healthy"},
		"operationState": map[string]any{"phase": "Succeeded", "message": "successfully synced", "syncResult": map[string]any{"revision": commit}},
	}
	if _, err := apps.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("staging promoted", func() bool { return strings.Contains(image("staging"), "website:4.0.0") })
	if s := staging(); s.Candidate == nil || s.Candidate.Since.IsZero() {
		t.Errorf("staging's candidate has no Ready time: %+v", s)
	}
}

// pipelinePage GETs the pipeline view in lang with the admin token.
func (h *harness) pipelinePage(lang string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/ui/pipelines?lang="+lang, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || strings.Contains(string(data), "<script") {
		h.t.Errorf("pipeline page: CSP %q, script in the page", csp)
	}
	return resp.StatusCode, string(data)
}

// TestReconcileRespectsHolds: reconcile brings dev to the registry's newest tag; Bob rolls dev back
// by hand; dev is held, and reconcile — polling every second — never submits the newer tag again.
func TestReconcileRespectsHolds(t *testing.T) {
	reg := registrytest.Start(t, nil)
	reg.Push(t, "imagehook-demo/website", "2.0.0")
	repo := manifesttest.Stages("dev")
	f := repo["envs/dev/website/deployment.yaml"]
	f.Data = bytes.ReplaceAll(f.Data, []byte("registry.cn-hangzhou.aliyuncs.com"), []byte(reg.Host))
	repo["apps/website/deployment.yaml"] = &fstest.MapFile{Data: []byte("kind: Deployment\nmetadata: {name: website}\n")}
	extra := fmt.Sprintf(`registries: [{host: %q, username: %s, password: %s, insecure: true}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: [{repo: apps, path: envs/dev/website, workload: deployment/website, container: website}]}`,
		reg.Host, registrytest.User, registrytest.Password)
	h := newHarnessRepoOpts(t, repo, "  - {id: polled, source: custom, tags: \"semver:*\", reconcile: {interval: 1s}, pipeline: website}\n",
		func(o *Options) {
			o.Promote = promote.Options{Interval: 20 * time.Millisecond, HoldInterval: 20 * time.Millisecond}
		}, extra)
	dev := func() string { return h.gitOut("show", "main:envs/dev/website/deployment.yaml") }
	for deadline := time.Now().Add(time.Minute); !strings.Contains(dev(), "website:2.0.0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reconcile did not bring dev to 2.0.0:\n%s", h.logs.String())
		}
	}
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", h.git.Bare("apps"), ".")
	file := filepath.Join(work, "envs/dev/website/deployment.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, bytes.ReplaceAll(data, []byte("website:2.0.0"), []byte("website:1.0.0")), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "commit", "-q", "--author=Bob <bob@example.com>", "-am", "roll dev back")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	bob := gitserver.Git(t, work, "rev-parse", "HEAD")
	// A restart forgets what reconcile submitted: it sees 1.0.0 behind 2.0.0 and asks again, and the
	// hold answers. Three such passes, then check.
	h.stop()
	h.start()
	for deadline := time.Now().Add(time.Minute); strings.Count(h.logs.String(), "target held, newer tag not submitted") < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reconcile never met the hold:\n%s", h.logs.String())
		}
	}
	if head := h.gitOut("rev-parse", "main"); head != bob || !strings.Contains(dev(), "website:1.0.0") {
		t.Fatalf("Bob's rollback was undone: main %s (Bob's %s)\n%s", head, bob, dev())
	}
	if !strings.Contains(h.logs.String(), "held: "+bob[:7]+" by Bob") {
		t.Errorf("the log does not say who holds dev:\n%s", h.logs.String())
	}
}

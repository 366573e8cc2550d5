package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/pgtest"
	"github.com/imagehook/imagehook/internal/smtptest"
	"github.com/imagehook/imagehook/internal/testlog"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/updater"
)

const (
	gitPassword = "git-pa55word-do-not-log"
	hookToken   = "hook-t0ken-do-not-log"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer = testlog.Buffer

type harness struct {
	t    testing.TB
	git  *gitserver.Server
	cfg  *config.Config
	logs *syncBuffer
	addr string
	stop func()
	// tweak changes the service's options before each start.
	tweak func(*Options)
}

// newHarness serves the example manifests over smart HTTP and writes a config with one hook per
// payload format, all targeting the website deployment as the old tool's URLs name it.
func newHarness(t testing.TB, extra ...string) *harness {
	t.Helper()
	return newHarnessHooks(t, "", extra...)
}

// newHarnessHooks is newHarness with more hooks appended (YAML list items, indented by two).
func newHarnessHooks(t testing.TB, moreHooks string, extra ...string) *harness {
	t.Helper()
	return newHarnessRepo(t, examples.Manifests(), moreHooks, extra...)
}

// newHarnessRepo serves repo as the manifests repository.
func newHarnessRepo(t testing.TB, repo fs.FS, moreHooks string, extra ...string) *harness {
	t.Helper()
	return newHarnessRepoOpts(t, repo, moreHooks, nil, extra...)
}

// newHarnessRepoOpts is newHarnessRepo with the service's options changed by tweak.
func newHarnessRepoOpts(t testing.TB, repo fs.FS, moreHooks string, tweak func(*Options), extra ...string) *harness {
	t.Helper()
	git := gitserver.New(t, "imagehook", gitPassword)
	url := git.NewRepo(t, "apps", repo)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "git-password"), []byte(gitPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var hooks strings.Builder
	for _, src := range []string{"aliyun", "dockerhub", "custom", "harbor"} {
		fmt.Fprintf(&hooks, `  - id: %[1]s
    token: ${HOOK_TOKEN}
    source: %[1]s
    targets:
      - repo: apps
        path: apps/website
        workload: deployment/website
        namespace: web
        container: website
`, src)
	}
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %s
repos:
  - name: apps
    url: %s
    auth: {username: imagehook, passwordFile: %s}
    author: {name: imagehook-test, email: imagehook@example.com}
%s
hooks:
%s`, filepath.Join(dir, "data"), url, filepath.Join(dir, "git-password"), strings.Join(extra, "\n"), hooks.String()+moreHooks)
	cfg, err := config.Parse([]byte(yml), func(k string) (string, bool) {
		if k == "HOOK_TOKEN" {
			return hookToken, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(dir, "data")
	h := &harness{t: t, git: git, cfg: cfg, logs: &syncBuffer{}, tweak: tweak}
	h.start()
	t.Cleanup(func() {
		h.stop()
		for _, secret := range []string{gitPassword, hookToken} {
			if strings.Contains(h.logs.String(), secret) {
				t.Errorf("a secret appears in the log:\n%s", h.logs.String())
			}
		}
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{Updater: updater.Options{RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond},
		HooksDirPoll: 20 * time.Millisecond}
	if h.tweak != nil {
		h.tweak(&opts)
	}
	svc, err := New(h.cfg, log, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.addr = svc.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.stop = func() {}
	}
}

func (h *harness) post(path string, body []byte, header ...string) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.addr+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (int, map[string]any) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		h.t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL.Path, data)
	}
	for _, secret := range []string{gitPassword, hookToken} {
		if strings.Contains(string(data), secret) {
			h.t.Errorf("response leaks a secret: %s", data)
		}
	}
	return resp.StatusCode, m
}

func (h *harness) gitOut(args ...string) string {
	h.t.Helper()
	return gitserver.Git(h.t, h.git.Bare("apps"), args...)
}

func payload(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "registry", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The old tool's trigger URL, as users' registries have it configured.
const oldQuery = "?token=" + hookToken + "&ns=web&workload=deployment/website&container=website&wait=30s&repo_type="

// TestEndToEnd posts each format the old tool's way and checks that each yields exactly one pushed
// commit whose diff is exactly the image value.
func TestEndToEnd(t *testing.T) {
	for _, b := range journalBackends {
		t.Run(b.name, func(t *testing.T) { testEndToEnd(t, newHarness(t, b.config(t))) })
	}
}

// journalBackends are the journals the end-to-end suite runs on: the default SQLite, and a
// throwaway PostgreSQL cluster (skipped, with the reason, where PostgreSQL is not installed).
var journalBackends = []struct {
	name   string
	config func(t *testing.T) string
}{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", func(t *testing.T) string {
		return fmt.Sprintf("journal: {driver: postgres, dsn: %q}", pgtest.Start(t).DSN)
	}},
}

func testEndToEnd(t *testing.T, h *harness) {
	aliyun := bytes.ReplaceAll(payload(t, "aliyun/aliyun-acr.official-doc.json"), []byte(`"namespace/repoTest"`), []byte(`"imagehook-demo/website"`))
	aliyun = bytes.ReplaceAll(aliyun, []byte(`"latest"`), []byte(`"1.1.0"`))
	custom := []byte(`{"push_data":{"tag":"1.3.0"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","name":"website","namespace":"imagehook-demo"}}`)
	dockerhub := []byte(`{"push_data":{"pushed_at":1552553567,"tag":"1.2.0","pusher":"ci"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	harbor := bytes.ReplaceAll(payload(t, "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json"), []byte("hub.harbor.com/test-webhook/debian:latest"), []byte("harbor.example.com/imagehook-demo/website:1.4.0"))
	// The manifest names the ACR host; pushes of the same repository path through another host
	// (Docker Hub, a Harbor replica) keep the manifest's host, the one its cluster pulls from.
	steps := []struct {
		hook   string
		body   []byte
		pushed string
		want   string
	}{
		{"aliyun", aliyun, "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.1.0@sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917", "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.1.0"},
		{"dockerhub", dockerhub, "imagehook-demo/website:1.2.0", "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.2.0"},
		{"custom", custom, "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.3.0", "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.3.0"},
		{"harbor", harbor, "harbor.example.com/imagehook-demo/website:1.4.0@sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8", "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.4.0"},
	}
	for _, st := range steps {
		t.Run(st.hook, func(t *testing.T) {
			before := h.gitOut("rev-parse", "main")
			code, body := h.post("/hooks/"+st.hook+oldQuery+st.hook, st.body)
			if code != http.StatusOK || body["status"] != "succeeded" {
				t.Fatalf("got %d %v, want 200 succeeded", code, body)
			}
			if n := h.gitOut("rev-list", "--count", before+"..main"); n != "1" {
				t.Fatalf("%s commits, want 1", n)
			}
			diff := h.gitOut("diff", "-U0", before, "main")
			var changed []string
			for _, l := range strings.Split(diff, "\n") {
				if (strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-")) && !strings.HasPrefix(l, "+++") && !strings.HasPrefix(l, "---") {
					changed = append(changed, l)
				}
			}
			if len(changed) != 2 || !strings.HasSuffix(changed[1], "image: "+st.want+"  # set by imagehook") {
				t.Errorf("diff changes %q, want exactly the image line set to %s", changed, st.want)
			}
			msg := h.gitOut("log", "-1", "--format=%B", "main")
			for _, trailer := range []string{"Imagehook-Event: " + body["id"].(string), "Imagehook-Hook: " + st.hook, "Imagehook-Source: " + st.hook, "Imagehook-Image: " + st.pushed} {
				if !strings.Contains(msg, trailer) {
					t.Errorf("commit message lacks %q:\n%s", trailer, msg)
				}
			}
			if author := h.gitOut("log", "-1", "--format=%an <%ae>", "main"); author != "imagehook-test <imagehook@example.com>" {
				t.Errorf("author = %s", author)
			}
		})
	}
	t.Run("redelivery makes no commit", func(t *testing.T) {
		for _, tt := range []struct {
			hook   string
			body   []byte
			status string
			detail string
		}{
			{"harbor", harbor, "ignored", "duplicate delivery of event"},                                     // same digest: a duplicate
			{"custom", bytes.ReplaceAll(custom, []byte("1.3.0"), []byte("1.4.0")), "succeeded", "unchanged"}, // no digest: already current
			{"harbor", bytes.ReplaceAll(harbor, []byte("imagehook-demo/website"), []byte("imagehook-demo/other")), "ignored", "another repository"},
		} {
			before := h.gitOut("rev-parse", "main")
			code, body := h.post("/hooks/"+tt.hook+oldQuery+tt.hook, tt.body)
			if code != http.StatusOK || body["status"] != tt.status {
				t.Fatalf("%s: got %d %v, want %s", tt.hook, code, body, tt.status)
			}
			if after := h.gitOut("rev-parse", "main"); after != before {
				t.Errorf("%s: a commit was made: %s", tt.hook, h.gitOut("show", "main"))
			}
			steps := body["steps"].([]any)
			if d := fmt.Sprint(steps[0].(map[string]any)["detail"]); !strings.Contains(d, tt.detail) {
				t.Errorf("%s: detail = %v, want %q", tt.hook, d, tt.detail)
			}
		}
	})
	t.Run("event is readable", func(t *testing.T) {
		// A new push (a replay of the earlier dockerhub delivery would be ignored as older).
		fresh := []byte(fmt.Sprintf(`{"push_data":{"pushed_at":%d,"tag":"1.5.0","pusher":"ci"},"repository":{"repo_name":"imagehook-demo/website"}}`, time.Now().Unix()))
		code, body := h.post("/hooks/dockerhub?token="+hookToken, fresh)
		if code != http.StatusAccepted || body["status"] != "queued" {
			t.Fatalf("got %d %v", code, body)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+body["id"].(string), nil)
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, ev := h.do(req)
			if code != http.StatusOK {
				t.Fatalf("GET event: %d", code)
			}
			if ev["status"] == "succeeded" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event still %v", ev["status"])
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestBadRequestsChangeNothing checks every refusal's status and that none of them commits.
func TestBadRequestsChangeNothing(t *testing.T) {
	h := newHarness(t)
	before := h.gitOut("rev-parse", "main")
	good := payload(t, "dockerhub/dockerhub.keel-fixture.json")
	big := append([]byte(`{"push_data":{"tag":"1"},"x":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		header []string
		code   int
	}{
		{"wrong token", "POST", "/hooks/dockerhub?token=nope", good, nil, 401},
		{"no token", "POST", "/hooks/dockerhub", good, nil, 401},
		{"wrong bearer", "POST", "/hooks/dockerhub", good, []string{"Authorization", "Bearer nope"}, 401},
		{"unknown hook", "POST", "/hooks/nope?token=" + hookToken, good, nil, 404},
		{"unknown repo_type", "POST", "/hooks/dockerhub?token=" + hookToken + "&repo_type=gitlab", good, nil, 400},
		{"wrong namespace", "POST", "/hooks/dockerhub?token=" + hookToken + "&ns=other", good, nil, 403},
		{"wrong workload", "POST", "/hooks/dockerhub?token=" + hookToken + "&workload=deployment/api", good, nil, 403},
		{"wrong container", "POST", "/hooks/dockerhub?token=" + hookToken + "&container=sidecar", good, nil, 403},
		{"malformed json", "POST", "/hooks/dockerhub?token=" + hookToken, []byte(`{"push_data":`), nil, 400},
		{"2 MiB body", "POST", "/hooks/dockerhub?token=" + hookToken, big, nil, 413},
		{"odd image", "POST", "/hooks/dockerhub?token=" + hookToken, []byte(`{"push_data":{"tag":"1;rm -rf"},"repository":{"repo_name":"a/b"}}`), nil, 400},
		{"wrong method", "GET", "/hooks/dockerhub?token=" + hookToken, nil, nil, 405},
		{"test delivery", "POST", "/hooks/dockerhub", []byte(`{"push_data":{},"repository":{"repo_name":"a/b"}}`), []string{"Authorization", hookToken}, 200},
		{"bad wait", "POST", "/hooks/dockerhub?wait=soon&token=" + hookToken, []byte(`{"push_data":{"tag":"1"},"repository":{"repo_name":"a/b"}}`), nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+h.addr+tt.path, bytes.NewReader(tt.body))
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			code, body := h.do(req)
			if code != tt.code {
				t.Errorf("status = %d %v, want %d", code, body, tt.code)
			}
			if code >= 400 && body["error"] == "" {
				t.Errorf("error body lacks a message: %v", body)
			}
			if code == 200 && body["status"] != "ignored" {
				t.Errorf("body = %v, want ignored", body)
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // let any (wrongly) queued event reach the worker
	if after := h.gitOut("rev-parse", "main"); after != before {
		t.Errorf("a refused request committed: %s", h.gitOut("log", "--oneline", before+"..main"))
	}
}

// TestAcceptedEventSurvivesRestart accepts an event while the git server is down, stops the
// service before it can be applied, and checks that the next start applies it.
func TestAcceptedEventSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.git.Down.Store(true)
	code, body := h.post("/hooks/dockerhub?token="+hookToken, []byte(`{"push_data":{"tag":"9.9.9"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != http.StatusAccepted {
		t.Fatalf("got %d %v", code, body)
	}
	id := body["id"].(string)
	time.Sleep(150 * time.Millisecond) // a failed attempt or two
	h.stop()
	h.git.Down.Store(false)
	h.start()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/hooks/none", nil)
	_ = req
	deadline := time.Now().Add(20 * time.Second)
	for {
		get, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
		code, ev := h.do(get)
		if code != http.StatusOK {
			t.Fatalf("GET event after restart: %d %v", code, ev)
		}
		if ev["status"] == "succeeded" {
			break
		}
		if ev["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("event after restart: %v", ev)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.gitOut("show", "main:apps/website/deployment.yaml"); !strings.Contains(got, "imagehook-demo/website:9.9.9") {
		t.Errorf("image not updated after restart:\n%s", got)
	}
}

// TestMailReportsSuccessAndFailure runs the flow with mail pointed at a real SMTP server.
func TestMailReportsSuccessAndFailure(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	h := newHarness(t, fmt.Sprintf(`mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}`,
		smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User))
	ok := []byte(`{"push_data":{"tag":"2.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	if code, body := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, ok); code != 200 || body["status"] != "succeeded" {
		t.Fatalf("got %d %v", code, body)
	}
	// A tag that the pinned-digest rule cannot write makes the event fail: pin the image first.
	bad := []byte(`{"push_data":{"tag":"2.0.1"},"repository":{"repo_name":"imagehook-demo/other"}}`)
	if code, body := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, bad); code != 200 || body["status"] != "ignored" {
		t.Fatalf("got %d %v", code, body)
	}
	// The git server goes away: the event is retried, then fails, and the failure is mailed.
	h.git.Down.Store(true)
	down := []byte(`{"push_data":{"tag":"2.0.2"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	if code, body := h.post("/hooks/dockerhub?wait=60s&token="+hookToken, down); code != 200 || body["status"] != "failed" || body["attempts"] != float64(10) {
		t.Fatalf("got %d %v", code, body)
	}
	msgs, rcpts := smtpSrv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d mails, want 2 (the ignored push is not mailed)", len(msgs))
	}
	if !strings.Contains(string(msgs[1]), "failed") || !strings.Contains(string(msgs[1]), "503") {
		t.Errorf("failure mail:\n%s", msgs[1])
	}
	if rcpts[0][0] != "ops@example.com" || !strings.Contains(string(msgs[0]), "imagehook-demo/website:2.0.0") {
		t.Errorf("mail: %v\n%s", rcpts, msgs[0])
	}
	for _, secret := range []string{smtptest.Password, gitPassword, hookToken} {
		if strings.Contains(string(msgs[0]), secret) {
			t.Errorf("mail contains a secret")
		}
	}
}

// TestAuditTrailAndLandedEvents reads the trailers back, and resumes an event whose push landed
// before its outcome was recorded (a crash between the two): it is not pushed twice and records
// the earlier commit.
func TestAuditTrailAndLandedEvents(t *testing.T) {
	h := newHarness(t)
	body := []byte(`{"push_data":{"tag":"5.0.0","pusher":"alice"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	code, resp := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, body)
	if code != 200 || resp["status"] != "succeeded" {
		t.Fatalf("got %d %v", code, resp)
	}
	id := resp["id"].(string)
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook-test", Email: "imagehook@example.com"}}.Open(h.git.Bare("apps"), 0, "deployment/website")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Event != id || entries[0].Hook != "dockerhub" || entries[0].Pusher != "alice" ||
		len(entries[0].Changes) != 1 || entries[0].Changes[0].New != "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:5.0.0" ||
		entries[0].Changes[0].Old != "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0" {
		t.Fatalf("history = %+v", entries)
	}
	commit := entries[0].Commit

	// Pretend the process died after the push: the journal still says queued.
	h.stop()
	j, err := journal.OpenSQLite(filepath.Join(h.cfg.DataDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := j.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ev.Status, ev.Steps = event.Queued, nil
	if err := j.Update(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	j.Close()
	h.start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		get, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
		_, got := h.do(get)
		if got["status"] == "succeeded" {
			step := got["steps"].([]any)[0].(map[string]any)
			if step["commit"] != commit || step["reason"] != string(event.ReasonLanded) {
				t.Errorf("step = %v, want commit %s from the earlier attempt", step, commit)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event = %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.gitOut("rev-list", "--count", "main"); n != "2" {
		t.Errorf("%s commits, want 2 (seed + one push)", n)
	}
}

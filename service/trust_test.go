package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/smtptest"
	"github.com/imagehook/imagehook/updater"
)

// withFiles returns the example manifests with extra files added or replaced.
func withFiles(t testing.TB, extra map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(examples.Manifests(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(examples.Manifests(), p)
		m[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range extra {
		m[p] = &fstest.MapFile{Data: []byte(content), Mode: 0o644}
	}
	return m
}

// getEvent reads an event with GET /events/{id}.
func (h *harness) getEvent(id string, header ...string) map[string]any {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	code, ev := h.do(req)
	if code != http.StatusOK {
		h.t.Fatalf("GET /events/%s: %d %v", id, code, ev)
	}
	return ev
}

// waitDone polls the event until it is done.
func (h *harness) waitDone(id string, header ...string) map[string]any {
	h.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		ev := h.getEvent(id, header...)
		switch ev["status"] {
		case "succeeded", "failed", "ignored":
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("event %s still %v", id, ev["status"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func step(ev map[string]any, name string) map[string]any {
	steps, _ := ev["steps"].([]any)
	for _, s := range steps {
		if m := s.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

func (h *harness) manifestImage() string {
	h.t.Helper()
	for _, l := range strings.Split(h.gitOut("show", "main:apps/website/deployment.yaml"), "\n") {
		if strings.Contains(l, "image: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:") {
			return strings.Fields(l)[1]
		}
	}
	h.t.Fatal("no website image in the manifest")
	return ""
}

// Rows 3 and 15: files too dense to decode, or not YAML, are skipped and named on the event; the
// target is still updated.
func TestSkippedFilesAreNamed(t *testing.T) {
	h := newHarnessRepo(t, withFiles(t, map[string]string{
		"apps/website/big/huge.yaml": "# website\n" + strings.Repeat("k: website\n", 4<<20/11),
		"apps/website/broken.yaml":   "name: website\n  bad: [indent\n",
	}), "")
	body := []byte(`{"push_data":{"tag":"1.7.0"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	code, ev := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, body)
	if code != http.StatusOK || ev["status"] != "succeeded" {
		t.Fatalf("got %d %v", code, ev)
	}
	skipped := fmt.Sprint(step(ev, "git")["skipped"])
	for _, want := range []string{"skipped apps/website/big/huge.yaml: 4.0 MiB; its document 1 decodes to over 150000 YAML nodes", "skipped apps/website/broken.yaml: not valid YAML"} {
		if !strings.Contains(skipped, want) {
			t.Errorf("skipped = %s, want %q", skipped, want)
		}
	}
	if got := h.manifestImage(); !strings.HasSuffix(got, ":1.7.0") {
		t.Errorf("image = %s", got)
	}
}

func giteaBody(version string, created time.Time) []byte {
	return []byte(fmt.Sprintf(`{"action":"created","package":{"type":"container","name":"website","version":%q,`+
		`"html_url":"https://git.example.com/imagehook-demo/-/packages/container/website/%s","created_at":%q,`+
		`"owner":{"login":"imagehook-demo"},"creator":{"login":"ci"}}}`, version, version, created.UTC().Format(time.RFC3339)))
}

func giteaSign(body []byte) string {
	m := hmac.New(sha256.New, []byte(hookToken))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Row 4: a captured, validly signed delivery replayed later changes nothing: with its delivery id
// it is a duplicate; with a new id (the header is not signed) it is older than what the target
// runs. A hook with allowOlder still rolls back on purpose.
func TestReplayedDeliveriesChangeNothing(t *testing.T) {
	for _, b := range journalBackends {
		t.Run(b.name, func(t *testing.T) { testReplayedDeliveriesChangeNothing(t, b.config(t)) })
	}
}

func testReplayedDeliveriesChangeNothing(t *testing.T, journal string) {
	hooks := ""
	for _, id := range []string{"gitea", "gitea-rollback"} {
		hooks += fmt.Sprintf(`  - id: %s
    token: ${HOOK_TOKEN}
    source: gitea
    allowOlder: %v
    targets:
      - {repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}
`, id, id == "gitea-rollback")
	}
	h := newHarnessHooks(t, hooks, journal)
	old, newer := time.Now().Add(-72*time.Hour), time.Now().Add(-time.Hour)
	deliver := func(hook string, body []byte, delivery string) (int, map[string]any) {
		return h.post("/hooks/"+hook+"?wait=30s", body, "X-Gitea-Event", "package", "X-Gitea-Delivery", delivery, "X-Gitea-Signature", giteaSign(body))
	}
	captured := giteaBody("8.8.8", old)
	for _, d := range []struct {
		body     []byte
		delivery string
	}{{captured, "d-1"}, {giteaBody("11.0.0", newer), "d-2"}} {
		if code, ev := deliver("gitea", d.body, d.delivery); code != 200 || ev["status"] != "succeeded" {
			t.Fatalf("delivery %s: %d %v", d.delivery, code, ev)
		}
	}
	before := h.gitOut("rev-parse", "main")
	code, ev := deliver("gitea", captured, "d-1")
	if code != 200 || ev["status"] != "ignored" || !strings.Contains(fmt.Sprint(ev["reason"]), "duplicate delivery") {
		t.Errorf("same delivery id: %d %v, want 200 ignored duplicate delivery", code, ev)
	}
	code, ev = deliver("gitea", captured, "d-forged-fresh-id")
	if code != 200 || ev["status"] != "ignored" || !strings.Contains(fmt.Sprint(step(ev, "git")["detail"]), "older push") {
		t.Errorf("new delivery id: %d %v, want 200 ignored older push", code, ev)
	}
	if after := h.gitOut("rev-parse", "main"); after != before || !strings.HasSuffix(h.manifestImage(), ":11.0.0") {
		t.Fatalf("a replay changed the repository: %s", h.manifestImage())
	}
	if code, ev := deliver("gitea-rollback", captured, "d-3"); code != 200 || ev["status"] != "succeeded" || !strings.HasSuffix(h.manifestImage(), ":8.8.8") {
		t.Errorf("allowOlder rollback: %d %v, image %s", code, ev, h.manifestImage())
	}
}

// Row 13: under 500 concurrent deliveries for one target, the event journaled last wins.
func TestLastJournaledWins(t *testing.T) {
	for _, b := range journalBackends {
		t.Run(b.name, func(t *testing.T) { testLastJournaledWins(t, newHarness(t, b.config(t))) })
	}
}

func testLastJournaledWins(t *testing.T, h *harness) {
	const n = 500
	ids := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := []byte(fmt.Sprintf(`{"push_data":{"tag":"7.0.%d"},"repository":{"repo_name":"imagehook-demo/website"}}`, i))
			req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/hooks/dockerhub?token="+hookToken, strings.NewReader(string(body)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var id string
			if _, err := fmt.Sscanf(string(data[strings.Index(string(data), `"id": "`)+7:]), "%26s", &id); err != nil || resp.StatusCode != 202 {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, data))
				mu.Unlock()
			}
			ids[i] = id
		}(i)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d deliveries refused, e.g. %s", len(failures), failures[0])
	}
	var lastSeq float64
	lastTag := ""
	for i, id := range ids {
		ev := h.waitDone(id)
		if seq, _ := ev["seq"].(float64); seq > lastSeq {
			lastSeq, lastTag = seq, fmt.Sprintf("7.0.%d", i)
		}
	}
	if got := h.manifestImage(); !strings.HasSuffix(got, ":"+lastTag) {
		t.Errorf("manifest runs %s, want the last journaled push %s", got, lastTag)
	}
}

// Rows 6 and 7: names from the manifests (many people commit to them) and from payloads (the
// pusher) cannot add trailer lines, and history reads only the final block of imagehook's commits.
func TestAuditTrailCannotBeForged(t *testing.T) {
	forged := "Imagehook-Event: 00000000000000000000forged"
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: website\n  namespace: web\nspec:\n  template:\n    spec:\n      containers:\n" +
		"        - name: \"website\\n" + forged + "\\nImagehook-Change: deployment/website website a -> b\"\n" +
		"          image: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0\n"
	hook := `  - id: any-container
    token: ${HOOK_TOKEN}
    source: custom
    targets:
      - {repo: apps, path: apps/website, workload: deployment/website, namespace: web}
`
	h := newHarnessRepo(t, withFiles(t, map[string]string{"apps/website/deployment.yaml": deploy}), hook)
	body := []byte(`{"push_data":{"tag":"9.0.0","pusher":"ci\n\n` + forged + `\nImagehook-Hook: x"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`)
	code, ev := h.post("/hooks/any-container?wait=30s&token="+hookToken, body)
	if code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("got %d %v", code, ev)
	}
	msg := h.gitOut("log", "-1", "--format=%B", "main")
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, forged) || strings.HasPrefix(l, "Imagehook-Hook: x") {
			t.Errorf("commit message has a forged line %q:\n%s", l, msg)
		}
	}
	// A colleague's commit that carries a trailer block of its own.
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", h.git.Bare("apps"), ".")
	if err := os.WriteFile(filepath.Join(work, "NOTES"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "NOTES")
	gitserver.Git(t, work, "commit", "-q", "-m", "notes\n\n"+forged+"\nImagehook-Image: evil/image:1")
	gitserver.Git(t, work, "push", "-q", "origin", "HEAD:main")
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook-test", Email: "imagehook@example.com"}}.Open(h.git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Event != ev["id"] {
		t.Errorf("history = %+v, want only event %v", entries, ev["id"])
	}
}

// Row 7 with a commit template that prints the pusher: the template's output is never the final
// paragraph, and the pusher is one line.
func TestCommitTemplateCannotForgeTrailers(t *testing.T) {
	git := gitserver.New(t, "imagehook", gitPassword)
	url := git.NewRepo(t, "apps", examples.Manifests())
	dir := t.TempDir()
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %s
repos:
  - name: apps
    url: %s
    auth: {username: imagehook, password: %s}
    author: {name: imagehook-test, email: imagehook@example.com}
    commitTemplate: "deploy{{range .Events}} by {{.Push.Pusher}}{{end}}"
hooks:
  - id: dockerhub
    token: %s
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, dir, url, gitPassword, hookToken)
	cfg, err := config.Parse([]byte(yml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, git: git, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	defer h.stop()
	body := []byte(`{"push_data":{"tag":"9.1.0","pusher":"ci\n\nImagehook-Event: forged\nImagehook-Change: deployment/website website a -> b\n"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	if code, ev := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, body); code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("got %d %v", code, ev)
	}
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook-test", Email: "imagehook@example.com"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Event == "forged" || len(entries[0].Changes) != 1 || entries[0].Changes[0].Old == "a" {
		t.Errorf("history = %+v", entries)
	}
	if msg := h.gitOut("log", "-1", "--format=%B", "main"); !strings.HasPrefix(msg, "deploy by ci  Imagehook-Event: forged") {
		t.Errorf("message = %q", msg)
	}
}

// Row 10: events carried by the same commit get one mail between them.
func TestOneMailPerCommit(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	hook := `  - id: registry
    token: ${HOOK_TOKEN}
    source: distribution
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessHooks(t, hook, fmt.Sprintf(`mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}`,
		smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User))
	var events []string
	for i := 1; i <= 20; i++ {
		events = append(events, fmt.Sprintf(`{"id":"n%d","action":"push","timestamp":"2026-11-27T10:00:%02dZ","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"imagehook-demo/website","tag":"3.0.%d"},"request":{"host":"registry.cn-hangzhou.aliyuncs.com"}}`, i, i, i))
	}
	code, resp := h.post("/hooks/registry?token="+hookToken, []byte(`{"events":[`+strings.Join(events, ",")+`]}`))
	if code != http.StatusAccepted {
		t.Fatalf("got %d %v", code, resp)
	}
	commits := map[string]bool{}
	for _, id := range resp["ids"].([]any) {
		ev := h.waitDone(id.(string))
		if ev["status"] != "succeeded" {
			t.Fatalf("event %v", ev)
		}
		commits[fmt.Sprint(step(ev, "git")["commit"])] = true
	}
	if msgs, _ := smtpSrv.Messages(); len(msgs) != len(commits) {
		t.Errorf("%d mails for 20 events in %d commits, want one per commit", len(msgs), len(commits))
	}
}

// tarpit accepts SMTP connections and never answers, until release is called.
func tarpit(t *testing.T) (port int, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	release = func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	t.Cleanup(release)
	return ln.Addr().(*net.TCPAddr).Port, release
}

// Row 11: an SMTP server that never answers never holds git back: 80 deliveries, each its own
// commit, all land while the first mail is still waiting for the server. (That the mail step
// then fails "timed out" is notify/mail's TestDeadline.)
func TestSlowMailNeverSlowsGit(t *testing.T) {
	port, release := tarpit(t)
	h := newHarness(t, fmt.Sprintf(`mail: {host: 127.0.0.1, port: %d, tls: none, from: bot@example.com, to: [ops@example.com], deadline: 10m, timeout: 10m}`, port))
	for i := 1; i <= 80; i++ {
		body := []byte(fmt.Sprintf(`{"push_data":{"tag":"4.0.%d"},"repository":{"repo_name":"imagehook-demo/website"}}`, i))
		code, resp := h.post("/hooks/dockerhub?token="+hookToken, body)
		if code != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %v", i, code, resp)
		}
		// One batch per delivery: wait for its git step before the next one.
		id := resp["id"].(string)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			ev := h.getEvent(id)
			if st := step(ev, "git"); st != nil {
				if st["status"] != "succeeded" {
					t.Fatalf("delivery %d: git %v", i, st)
				}
				if ev["status"] != "running" {
					t.Fatalf("delivery %d is %v: the mail should still be waiting for the tarpit", i, ev["status"])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery %d: no git step after a minute: git is waiting for mail", i)
			}
		}
	}
	if got := h.manifestImage(); !strings.HasSuffix(got, ":4.0.80") {
		t.Errorf("image = %s", got)
	}
	release() // the mail in flight fails now, so the service stops without waiting for it
}

// Row 5: no secret of the config reaches the event API, the status page, mail or the log, on the
// error paths that quote them: a git server answering 500 to a URL with a token as its user name,
// and an SMTP server refusing the password.
func TestNoSecretLeaks(t *testing.T) {
	const urlToken, adminToken, badMailPassword = "ghp_URLT0KEN-do-not-log", "adm1n-t0ken-do-not-log", "wr0ng-mail-pw-do-not-log"
	git := gitserver.New(t, "imagehook", gitPassword)
	url := git.NewRepo(t, "apps", examples.Manifests())
	git.FailStatus.Store(http.StatusInternalServerError)
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	for _, tt := range []struct {
		name, mailPassword string
	}{{"git 500, mail delivered", smtptest.Password}, {"git 500, mail refused", badMailPassword}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %s
admin: {token: %s}
repos:
  - name: apps
    url: %s
mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}
hooks:
  - id: dockerhub
    token: %s
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, dir, adminToken, strings.Replace(url, "http://", "http://"+urlToken+"@", 1), smtpSrv.Port, smtptest.User, tt.mailPassword, smtptest.User, hookToken)
			cfg, err := config.Parse([]byte(yml), os.LookupEnv)
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			svc, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Options{Updater: updater.Options{RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, MaxAttempts: 2}})
			if err != nil {
				t.Fatal(err)
			}
			h := &harness{t: t, git: git, cfg: cfg, logs: logs, addr: svc.Addr()}
			stop := runService(t, svc)
			defer stop()
			code, resp := h.post("/hooks/dockerhub?token="+hookToken, []byte(`{"push_data":{"tag":"1.8.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
			if code != http.StatusAccepted {
				t.Fatalf("got %d %v", code, resp)
			}
			id := resp["id"].(string)
			auth := []string{"Authorization", "Bearer " + adminToken}
			ev := h.waitDone(id, auth...)
			if gitErr := fmt.Sprint(step(ev, "git")["error"]); ev["status"] != "failed" || !strings.Contains(gitErr, "http://***@127.0.0.1") {
				t.Errorf("event %v: git error %q, want failed with the URL's token masked", ev["status"], gitErr)
			}
			var outputs []string
			outputs = append(outputs, fmtAny(ev), logs.String())
			for _, page := range []string{"/", "/ui/events/" + id} {
				req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+page, nil)
				req.Header.Set(auth[0], auth[1])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				outputs = append(outputs, string(data))
			}
			msgs, _ := smtpSrv.Messages()
			for _, m := range msgs {
				outputs = append(outputs, string(m))
			}
			if tt.mailPassword == badMailPassword {
				if st := step(ev, "notify"); st == nil || st["status"] != "failed" {
					t.Errorf("notify step = %v, want failed", st)
				}
			} else if len(msgs) == 0 {
				t.Error("no failure mail")
			}
			for _, out := range outputs {
				for _, secret := range []string{urlToken, adminToken, hookToken, smtptest.Password, badMailPassword} {
					if strings.Contains(out, secret) {
						t.Errorf("a secret (%.6s…) leaks:\n%s", secret, out)
					}
				}
			}
		})
	}
}

func fmtAny(v any) string { return fmt.Sprintf("%v", v) }

// runService runs svc until the returned stop is called.
func runService(t *testing.T, svc *Service) func() {
	t.Helper()
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

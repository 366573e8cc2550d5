package service

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/giteatest"
)

// TestForgeDeliveriesBudgetedOnGitea (trust row 6) runs pull-request write-back against a real
// Gitea, its API behind a proxy that counts the reads of pull requests. With one pull request
// open: a signed delivery replayed 100 times is taken once and answered "duplicate delivery"
// after; distinct deliveries past limits.forgeBurst are answered 429 with Retry-After and reason
// "rate limited"; and however many arrive, Gitea is read at most once a second (the run
// read it 28 times as often), and is read after the last delivery taken.
func TestForgeDeliveriesBudgetedOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	g.NewRepo(t, "apps", examples.Manifests())
	target, _ := url.Parse(g.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	pullRead := regexp.MustCompile(`/pulls/[0-9]+$`)
	var reads, lastRead atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && pullRead.MatchString(r.URL.Path) {
			reads.Add(1)
			lastRead.Store(time.Now().UnixNano())
		}
		proxy.ServeHTTP(w, r)
	}))
	defer api.Close()
	dir := t.TempDir()
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %[1]s
limits: {forgeRate: 0.001, forgeBurst: 20}
repos:
  - name: apps
    url: %[2]s/%[3]s/apps.git
    auth: {username: %[3]s, password: %[4]s}
    writeBack: {mode: pullRequest, provider: gitea, api: %[5]s/api/v1, token: %[6]s, webhookSecret: %[7]s, pollInterval: 1h}
hooks:
  - id: custom
    token: %[8]s
    source: custom
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, filepath.Join(dir, "data"), g.URL, giteatest.User, giteatest.Password, api.URL, g.Token, forgeSecret, hookToken)
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	t.Cleanup(h.stop)
	body := `{"push_data":{"tag":"5.5.5","pusher":"ci"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`
	if code, ev := h.post("/hooks/custom?wait=30s&token="+hookToken, []byte(body)); code != http.StatusAccepted || ev["status"] != "awaiting merge" {
		t.Fatalf("push: %d %v", code, ev)
	}
	delivery := []byte(`{"action":"synchronized","number":1,"pull_request":{"number":1}}`)
	deliver := func(id string) (int, map[string]any) {
		return h.post("/forges/apps", delivery, "X-Gitea-Signature", sign(forgeSecret, delivery), "X-Gitea-Delivery", id, "X-GitHub-Delivery", id)
	}
	start := time.Now()
	readsBefore := reads.Load()
	for i := range 100 {
		code, resp := deliver("replayed-1")
		switch {
		case i == 0 && code != http.StatusAccepted:
			t.Fatalf("the first delivery: %d %v", code, resp)
		case i > 0 && (code != http.StatusOK || resp["reason"] != "duplicate delivery"):
			t.Fatalf("replay %d: %d %v, want 200 duplicate delivery", i, code, resp)
		}
	}
	accepted, limited := 1, 0
	var retryAfter string
	lastAccepted := time.Now()
	for i := range 40 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/forges/apps", strings.NewReader(string(delivery)))
		req.Header.Set("X-Gitea-Signature", sign(forgeSecret, delivery))
		req.Header.Set("X-Gitea-Delivery", fmt.Sprintf("distinct-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
			lastAccepted = time.Now()
		case http.StatusTooManyRequests:
			limited++
			retryAfter = resp.Header.Get("Retry-After")
		default:
			t.Fatalf("distinct delivery %d: %d", i, resp.StatusCode)
		}
	}
	if accepted != 20 || limited != 21 || retryAfter == "" {
		t.Errorf("of 41 distinct deliveries with a burst of 20: %d accepted, %d answered 429 (Retry-After %q)", accepted, limited, retryAfter)
	}
	// The read the last deliveries were folded into comes within a second of the last one taken.
	for deadline := time.Now().Add(10 * time.Second); lastRead.Load() <= lastAccepted.UnixNano(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Gitea was not read after the last delivery taken (%d reads)", reads.Load()-readsBefore)
		}
	}
	elapsed := time.Since(start)
	n, most := reads.Load()-readsBefore, int64(elapsed/time.Second)+2
	t.Logf("141 deliveries in %s: %d reads of the pull request", elapsed.Round(time.Millisecond), n)
	if n > most {
		t.Errorf("141 deliveries in %s made %d reads of the pull request, want at most %d (one a second)", elapsed.Round(time.Millisecond), n, most)
	}
	// The body cap is the listener's one rule on this route too.
	big := []byte(`{"pad":"` + strings.Repeat("x", 2<<20) + `"}`)
	if code, resp := h.post("/forges/apps", big, "X-Gitea-Signature", sign(forgeSecret, big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB delivery: %d %v, want 413", code, resp)
	}
	for _, want := range []string{`reason="duplicate delivery"`, `reason="rate limited"`} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

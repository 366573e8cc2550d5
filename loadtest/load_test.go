//go:build loadtest

// Package loadtest runs imagehook as its own process against a real smart-HTTP git server holding a
// generated 5,000-file / 2,000-commit repository, and prints throughput, latency and memory figures.
// Run it with `make bench` (or go test -tags loadtest -run TestLoad -v ./loadtest).
package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/gitserver"
)

const (
	files   = 5000
	commits = 2000
	token   = "load-test-token"
)

var imageTag = regexp.MustCompile(`(image: registry.example.com/acme/app-\d+:)\S+`)

func appPath(i int) string { return fmt.Sprintf("apps/team-%02d/app-%04d", i/100, i) }

// generate fills a bare repository with fast-import: one commit with every file, then small ones.
func generate(t *testing.T, bare string) {
	t.Helper()
	var b bytes.Buffer
	doc := func(i, replicas int) string {
		return fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%04d\n  namespace: team-%02d\nspec:\n  replicas: %d\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/app-%04d:1.0.0  # managed by imagehook\n        - name: proxy\n          image: envoyproxy/envoy:v1.30.0\n",
			i, i/100, replicas, i)
	}
	data := func(s string) { fmt.Fprintf(&b, "data %d\n%s\n", len(s), s) }
	when := time.Now().Add(-commits * time.Minute).Unix()
	for c := 1; c <= commits; c++ {
		fmt.Fprintf(&b, "commit refs/heads/main\nmark :%d\ncommitter gen <gen@example.com> %d +0000\n", c, when+int64(c)*60)
		data(fmt.Sprintf("change %d", c))
		if c > 1 {
			fmt.Fprintf(&b, "from :%d\n", c-1)
		}
		if c == 1 {
			for i := range files {
				fmt.Fprintf(&b, "M 100644 inline %s/deployment.yaml\n", appPath(i))
				data(doc(i, 2))
			}
		} else {
			i := (c * 7919) % files
			fmt.Fprintf(&b, "M 100644 inline %s/deployment.yaml\n", appPath(i))
			data(doc(i, 2+c%5))
		}
	}
	fastImport(t, bare, &b)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func procKB(pid int, field string) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

type client struct {
	base string
	http *http.Client
}

func (c *client) post(path string, body []byte) (int, map[string]any, error) {
	resp, err := c.http.Post(c.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m, nil
}

func (c *client) status(id string) string {
	resp, err := c.http.Get(c.base + "/events/" + id)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	s, _ := m["status"].(string)
	return s
}

// waitApplied waits until the event is final and says why it does not count as applied ("" when
// it succeeded, or was superseded by an event journaled later for the same workload).
func waitApplied(c *client, id string, within time.Duration) string {
	ev, final := waitFinal(c, id, time.Now().Add(within))
	switch st, _ := ev["status"].(string); {
	case !final:
		return fmt.Sprintf("not final after %v: %v", within, ev)
	case st == "succeeded":
		return ""
	case st == "ignored" && strings.Contains(fmt.Sprint(ev["steps"]), "superseded"):
		return ""
	case st == "ignored":
		return fmt.Sprintf("ignored: %v", ev["steps"])
	default:
		return fmt.Sprintf("failed: %v", ev)
	}
}

// waitFinal polls the event until it succeeded, was ignored or failed, or deadline passes (final
// false); it returns the event as GET /events/{id} last showed it.
func waitFinal(c *client, id string, deadline time.Time) (ev map[string]any, final bool) {
	for ; ; time.Sleep(20 * time.Millisecond) {
		ev = c.event(id)
		if st, _ := ev["status"].(string); st == "succeeded" || st == "ignored" || st == "failed" {
			return ev, true
		}
		if time.Now().After(deadline) {
			return ev, false
		}
	}
}

func payload(app int, tag string) []byte {
	return []byte(fmt.Sprintf(`{"push_data":{"tag":%q,"pusher":"load"},"repository":{"repo_url":"registry.example.com","namespace":"acme","name":"app-%04d"}}`, tag, app))
}

// fire sends n requests from conc goroutines and returns requests per second and the statuses.
func fire(c *client, n, conc int, req func(i int) (string, []byte)) (float64, map[int]int, []string) {
	return fireMany([]*client{c}, n, conc, req)
}

// fireMany is fire spread over several replicas, request i going to cs[i % len(cs)].
func fireMany(cs []*client, n, conc int, req func(i int) (string, []byte)) (float64, map[int]int, []string) {
	rps, codes, ids, _ := fireTimed(cs, n, conc, req)
	return rps, codes, ids
}

// fireTimed is fireMany that also returns each request's round trip.
func fireTimed(cs []*client, n, conc int, req func(i int) (string, []byte)) (float64, map[int]int, []string, []time.Duration) {
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[int]int{}
	var ids []string
	took := make([]time.Duration, 0, n)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				path, body := req(i)
				sent := time.Now()
				code, m, err := cs[i%len(cs)].post(path, body)
				d := time.Since(sent)
				mu.Lock()
				took = append(took, d)
				if err != nil {
					code = -1
				}
				codes[code]++
				if id, ok := m["id"].(string); ok {
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), codes, ids, took
}

// buildBinary builds imagehook for the run, or takes IMAGEHOOK_BIN (another build, for a baseline
// measured in the same run).
func buildBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("IMAGEHOOK_BIN"); bin != "" {
		return bin
	}
	root, _ := filepath.Abs("..")
	bin := filepath.Join(t.TempDir(), "imagehook")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// waitReady polls /readyz until imagehook answers.
func waitReady(t *testing.T, c *client) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := c.http.Get(c.base + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("imagehook not ready")
		}
	}
}

// newBenchRepo starts a smart-HTTP git server with an empty bare repository apps.git that takes
// pushes.
func newBenchRepo(t *testing.T) (*gitserver.Server, string) {
	t.Helper()
	git := gitserver.New(t, "bench", "bench-pw")
	bare := git.Bare("apps")
	gitserver.Git(t, git.Root, "init", "-q", "--bare", "-b", "main", bare)
	gitserver.Git(t, bare, "config", "http.receivepack", "true")
	return git, bare
}

// writeConfig writes the config of a scenario — imagehook on port, the apps repository of git,
// and the hooks given as YAML list items — and returns its path.
func writeConfig(t *testing.T, port int, git *gitserver.Server, hooks string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("listen: \"127.0.0.1:%d\"\ndataDir: %s\nrepos: [{name: apps, url: %s/apps.git, auth: {username: bench, password: bench-pw}}]\nhooks:\n%s",
		port, filepath.Join(dir, "data"), git.URL, hooks)
	p := filepath.Join(dir, "imagehook.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startImagehook runs bin with the config at cfgPath and waits until it is ready.
func startImagehook(t *testing.T, bin, cfgPath string, c *client) *exec.Cmd {
	t.Helper()
	proc := exec.Command(bin, "serve", "--config", cfgPath, "--log-level", "warn")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	return proc
}

// fastImport feeds a fast-import stream into a bare repository and packs it.
func fastImport(t *testing.T, bare string, stream *bytes.Buffer) {
	t.Helper()
	cmd := gitserver.Command(bare, "fast-import", "--quiet")
	cmd.Stdin = stream
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fast-import: %v\n%s", err, out)
	}
	gitserver.Git(t, bare, "gc", "-q")
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func TestLoad(t *testing.T) {
	bin := buildBinary(t)

	git, bare := newBenchRepo(t)
	start := time.Now()
	generate(t, bare)
	t.Logf("generated %d files, %d commits in %s", files, commits, time.Since(start).Round(time.Millisecond))

	dir := t.TempDir()
	port := freePort(t)
	var targets strings.Builder
	for i := range 50 {
		fmt.Fprintf(&targets, "      - {repo: apps, path: %s, workload: deployment/app-%04d, namespace: team-%02d, container: app}\n", appPath(i), i, i/100)
	}
	cfg := fmt.Sprintf(`listen: "127.0.0.1:%d"
dataDir: %s
limits: {hookRate: 1000000, hookBurst: 1000000, globalRate: 1000000, globalBurst: 1000000, maxPendingPerHook: 100000, maxPending: 100000}
repos:
  - name: apps
    url: %s/apps.git
    auth: {username: bench, password: bench-pw}
hooks:
  - id: load
    token: %s
    source: custom
    targets:
%s  - id: sink
    token: %s
    source: custom
    targets:
      - {repo: apps, path: %s, workload: deployment/app-4999, namespace: team-49, container: app}
`, port, filepath.Join(dir, "data"), git.URL, token, targets.String(), token, appPath(4999))
	cfgPath := filepath.Join(dir, "imagehook.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, _ := os.Create(filepath.Join(dir, "imagehook.log"))
	proc := exec.Command(bin, "serve", "--config", cfgPath, "--log-format", "json", "--log-level", "warn")
	proc.Stdout, proc.Stderr = logf, logf
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Process.Kill(); _, _ = proc.Process.Wait() })
	pid := proc.Process.Pid
	c := &client{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: 2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}}
	waitReady(t, c)
	time.Sleep(time.Second)
	idleCold, idleColdAnon := procKB(pid, "VmRSS"), procKB(pid, "RssAnon")

	// Warm the cache: the first event clones.
	start = time.Now()
	if code, m, err := c.post("/hooks/load?wait=120s&token="+token+"&workload=deployment/app-0000", payload(0, "1.0.1")); err != nil || code != 200 || m["status"] != "succeeded" {
		t.Fatalf("warm-up: %d %v %v", code, m, err)
	}
	coldFirst := time.Since(start)
	time.Sleep(2 * time.Second)
	idleWarm, idleWarmAnon := procKB(pid, "VmRSS"), procKB(pid, "RssAnon")

	t.Logf("warm: first event %v", coldFirst)
	rejectedRPS, rejectedCodes, _ := fire(c, 20000, 32, func(int) (string, []byte) {
		return "/hooks/load?token=wrong", payload(0, "9.9.9")
	})
	acceptedRPS, acceptedCodes, acceptedIDs := fire(c, 20000, 64, func(i int) (string, []byte) {
		return "/hooks/sink?token=" + token, payload(4999, fmt.Sprintf("3.0.%d", i))
	})
	t.Logf("accepted %.0f/s", acceptedRPS)
	drain := time.Now()
	// Let the accepted events drain before measuring latency.
	sort.Strings(acceptedIDs)
	for deadline := time.Now().Add(5 * time.Minute); ; {
		if s := c.status(acceptedIDs[len(acceptedIDs)-1]); s == "succeeded" || s == "failed" || s == "ignored" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("accepted events did not drain")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("drained in %v", time.Since(drain))
	// The newest id is not always the last event journaled (ids are drawn before the journal's
	// order is, and concurrent accepts reach the queue in any order), so each of the last 100 is
	// waited for: lost is one that failed, never finished, or was ignored for any reason but an
	// event journaled later for the same workload having been applied first (journal order wins:
	// the workload ends on the last journaled push, never rolled back).
	lostAccepted := 0
	for _, id := range acceptedIDs[len(acceptedIDs)-100:] {
		if why := waitApplied(c, id, time.Minute); why != "" {
			lostAccepted++
			t.Logf("accepted event %s not applied: %s", id, why)
		}
	}

	var seq []time.Duration
	for i := range 40 {
		start := time.Now()
		code, m, err := c.post("/hooks/load?wait=60s&token="+token+"&workload=deployment/app-0001", payload(1, fmt.Sprintf("2.0.%d", i)))
		if err != nil || code != 200 || m["status"] != "succeeded" {
			t.Fatalf("sequential %d: %d %v %v", i, code, m, err)
		}
		seq = append(seq, time.Since(start))
	}

	// The same change with the git CLI: a fresh shallow clone, edit, commit, push.
	var cli []time.Duration
	authURL := strings.Replace(git.URL, "http://", "http://bench:bench-pw@", 1) + "/apps.git"
	for i := range 5 {
		work := t.TempDir()
		start := time.Now()
		gitserver.Git(t, work, "clone", "-q", "--depth", "1", authURL, ".")
		p := filepath.Join(work, appPath(2), "deployment.yaml")
		data, _ := os.ReadFile(p)
		data = imageTag.ReplaceAll(data, []byte(fmt.Sprintf("${1}cli-%d", i)))
		_ = os.WriteFile(p, data, 0o644)
		gitserver.Git(t, work, "commit", "-qam", "cli")
		gitserver.Git(t, work, "push", "-q", "origin", "main")
		cli = append(cli, time.Since(start))
	}

	// A burst of 200 events for 50 workloads.
	before, _ := strconv.Atoi(gitserver.Git(t, bare, "rev-list", "--count", "main"))
	start = time.Now()
	_, burstCodes, burstIDs := fire(c, 200, 50, func(i int) (string, []byte) {
		app := i % 50
		return fmt.Sprintf("/hooks/load?token=%s&workload=deployment/app-%04d", token, app), payload(app, fmt.Sprintf("4.0.%d", i/50))
	})
	lost := 0
	for _, id := range burstIDs {
		for deadline := time.Now().Add(2 * time.Minute); ; {
			s := c.status(id)
			if s == "succeeded" {
				break
			}
			if s == "failed" || time.Now().After(deadline) {
				lost++
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	burst := time.Since(start)
	after, _ := strconv.Atoi(gitserver.Git(t, bare, "rev-list", "--count", "main"))
	peak := procKB(pid, "VmHWM")

	fmt.Printf("\n=== imagehook load run (%d files, %d commits, git http-backend on loopback) ===\n", files, commits)
	fmt.Printf("first event (clone of the cache)         %v\n", coldFirst.Round(time.Millisecond))
	fmt.Printf("idle RSS before first event / warm        %d MB / %d MB (anonymous %d MB / %d MB; the rest is the binary's pages)\n",
		idleCold/1024, idleWarm/1024, idleColdAnon/1024, idleWarmAnon/1024)
	fmt.Printf("rejected requests (bad token)             %.0f req/s  %v\n", rejectedRPS, rejectedCodes)
	fmt.Printf("accepted requests (journaled, 202)        %.0f req/s  %v, lost of last 100: %d\n", acceptedRPS, acceptedCodes, lostAccepted)
	fmt.Printf("webhook -> pushed, sequential, warm       p50 %v  p99 %v  (n=%d)\n", percentile(seq, .5).Round(time.Millisecond), percentile(seq, .99).Round(time.Millisecond), len(seq))
	fmt.Printf("git CLI shallow clone+edit+commit+push    p50 %v  (n=%d)  -> imagehook is %.1fx faster\n", percentile(cli, .5).Round(time.Millisecond), len(cli),
		float64(percentile(cli, .5))/float64(percentile(seq, .5)))
	fmt.Printf("burst: 200 events / 50 workloads          all pushed in %v, %d commits, %d lost, codes %v\n", burst.Round(time.Millisecond), after-before, lost, burstCodes)
	fmt.Printf("peak RSS                                  %d MB\n", peak/1024)
	if lost > 0 || lostAccepted > 0 {
		t.Errorf("lost events: burst %d, accepted %d", lost, lostAccepted)
	}
}

//go:build loadtest

package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// TestReplicas measures accepted webhooks per second with three replicas on one PostgreSQL
// (database included, on this machine) beside one process on SQLite, in the same run, and the
// failover time: the owner of the repository killed → the next commit.
func TestReplicas(t *testing.T) {
	bin := buildBinary(t)
	pg := pgtest.Start(t)
	git := gitserver.New(t, "bench", "bench-pw")
	url := git.NewRepo(t, "apps", examples.Manifests())
	start := func(journal string) (*client, *exec.Cmd, string) {
		port := freePort(t)
		dir := t.TempDir()
		cfg := fmt.Sprintf(`listen: "127.0.0.1:%d"
dataDir: %s
%s
limits: {hookRate: 100000, hookBurst: 100000, globalRate: 100000, globalBurst: 100000, maxPendingPerHook: 100000, maxPending: 100000}
repos: [{name: apps, url: %s, auth: {username: bench, password: bench-pw}}]
hooks:
  - id: web
    token: %s
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, port, filepath.Join(dir, "data"), journal, url, token)
		p := filepath.Join(dir, "imagehook.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c := &client{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
		log := filepath.Join(dir, "log")
		proc := exec.Command(bin, "serve", "--config", p, "--log-level", "info")
		f, _ := os.Create(log)
		proc.Stdout, proc.Stderr = f, f
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait(); f.Close() })
		waitReady(t, c)
		return c, proc, log
	}
	body := func(i int) (string, []byte) {
		return "/hooks/web?token=" + token, []byte(fmt.Sprintf(`{"push_data":{"tag":"5.%d.%d"},"repository":{"repo_name":"imagehook-demo/website"}}`, i/1000, i%1000))
	}
	const n, conc = 6000, 48

	sqlite, sqliteProc, _ := start("")
	sqliteRPS, sqliteCodes, _, sqliteTook := fireTimed([]*client{sqlite}, n, conc, body)
	_ = sqliteProc.Process.Kill()

	dsn := fmt.Sprintf("journal: {driver: postgres, dsn: %q}", pg.DSN)
	var cs []*client
	var procs []*exec.Cmd
	var logs []string
	for range 3 {
		c, p, l := start(dsn)
		cs, procs, logs = append(cs, c), append(procs, p), append(logs, l)
	}
	pgRPS, pgCodes, ids, pgTook := fireTimed(cs, n, conc, body)
	drained := time.Now()
	if len(ids) != n {
		t.Fatalf("%d of %d webhooks accepted: %v", len(ids), n, pgCodes)
	}
	for _, id := range ids[len(ids)-50:] {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if st := cs[0].status(id); st == "succeeded" || st == "ignored" || st == "failed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s not applied", id)
			}
		}
	}
	fmt.Printf("backlog after the burst applied in            %v\n", time.Since(drained).Round(time.Millisecond))

	// Failover, five times: the owner is killed while a burst is still being applied, a webhook
	// posted to a survivor right after must reach the repository; the dead replica is replaced.
	fleet := &replicaSet{start: func() (*client, *exec.Cmd, string) { return start(dsn) }, cs: cs, procs: procs, logs: logs}
	var failovers []time.Duration
	for round := range 5 {
		d, burst := fleet.failover(t, git, round, body)
		failovers, ids = append(failovers, d), append(ids, burst...)
	}
	checkAllApplied(t, fleet.cs[0], git, ids)
	fmt.Printf("\n=== replicas (PostgreSQL and the replicas on the same 2-core machine) ===\n")
	fmt.Printf("accepted webhooks, 1 process on SQLite          %.0f req/s  %v  p50 / p99 accept %v / %v\n", sqliteRPS, sqliteCodes,
		percentile(sqliteTook, 0.5).Round(10*time.Microsecond), percentile(sqliteTook, 0.99).Round(10*time.Microsecond))
	fmt.Printf("accepted webhooks, 3 replicas on PostgreSQL     %.0f req/s  %v  p50 / p99 accept %v / %v\n", pgRPS, pgCodes,
		percentile(pgTook, 0.5).Round(10*time.Microsecond), percentile(pgTook, 0.99).Round(10*time.Microsecond))
	fmt.Printf("replicas / SQLite                               %.2f\n", pgRPS/sqliteRPS)
	fmt.Printf("failover: owner killed mid-burst -> next commit p50 %v, max %v (%d rounds)\n", percentile(failovers, 0.5).Round(time.Millisecond),
		percentile(failovers, 1).Round(time.Millisecond), len(failovers))
}

// replicaSet is the three replicas of the failover rounds: a killed one is replaced by a new
// process (a new pod, its own data directory) on the same journal.
type replicaSet struct {
	start func() (*client, *exec.Cmd, string)
	cs    []*client
	procs []*exec.Cmd
	logs  []string
}

// owner is the replica that works the repository's queue: the one whose log (each process has its
// own, and an owner is only ever replaced by being killed) says it took the queue.
func (r *replicaSet) owner(t *testing.T) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for i, l := range r.logs {
			if data, _ := os.ReadFile(l); strings.Contains(string(data), "now works the queue\" component=replica queue=apps") {
				return i
			}
		}
	}
	t.Fatal("no owner found")
	return -1
}

// failover posts a burst of 300 webhooks to the replicas that do not own the queue, kills the
// owner as soon as they are accepted (its backlog still being applied), posts one more webhook to
// a survivor and returns how long from the kill until the repository holds that one, with the
// burst's event ids (the marker's included). The killed replica is replaced before it returns.
func (r *replicaSet) failover(t *testing.T, git *gitserver.Server, round int, body func(int) (string, []byte)) (time.Duration, []string) {
	t.Helper()
	owner := r.owner(t)
	others := []*client{r.cs[(owner+1)%3], r.cs[(owner+2)%3]}
	_, codes, ids, _ := fireTimed(others, 300, 8, func(i int) (string, []byte) { return body(100000 + round*1000 + i) })
	if len(ids) != 300 {
		t.Fatalf("round %d: %d of 300 webhooks accepted: %v", round, len(ids), codes)
	}
	killed := time.Now()
	_ = r.procs[owner].Process.Kill()
	_ = r.procs[owner].Wait()
	tag := fmt.Sprintf("7.%d.0", round)
	code, m, err := others[0].post("/hooks/web?token="+token, []byte(`{"push_data":{"tag":"`+tag+`"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("round %d: post after the kill: %d %v", round, code, err)
	}
	ids = append(ids, m["id"].(string))
	var took time.Duration
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(gitserver.Git(t, git.Bare("apps"), "show", "main:apps/website/deployment.yaml"), "website:"+tag) {
			took = time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("round %d: no commit after the owner was killed", round)
		}
	}
	c, p, l := r.start()
	r.cs[owner], r.procs[owner], r.logs[owner] = c, p, l
	return took, ids
}

// checkAllApplied waits until every accepted event is done, and checks that each succeeded or
// was ignored as superseded by a later one, and that none is in two commits' trailers.
func checkAllApplied(t *testing.T, c *client, git *gitserver.Server, ids []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for _, id := range ids {
		ev, final := waitFinal(c, id, deadline)
		switch st, _ := ev["status"].(string); {
		case !final || st == "failed":
			t.Fatalf("event %s not applied: %v", id, ev)
		case st == "ignored":
			if steps := fmt.Sprint(ev["steps"]); !strings.Contains(steps, "superseded") && !strings.Contains(steps, "unchanged") {
				t.Fatalf("event %s ignored, not as superseded: %s", id, steps)
			}
		}
	}
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Event]++
	}
	for id, k := range seen {
		if k > 1 {
			t.Errorf("event %s is in %d commits' trailers", id, k)
		}
	}
}

// event returns the event as GET /events/{id} shows it.
func (c *client) event(id string) map[string]any {
	resp, err := c.http.Get(c.base + "/events/" + id)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

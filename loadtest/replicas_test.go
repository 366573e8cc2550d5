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
	checkAllApplied(t, cs[0], git, ids)

	// Failover: with the backlog applied, kill the owner, post to another replica, time the next
	// commit.
	owner := -1
	for i, l := range logs {
		data, _ := os.ReadFile(l)
		if strings.Contains(string(data), "now works the queue\" component=replica queue=apps") {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no owner found")
	}
	before := gitserver.Git(t, git.Bare("apps"), "rev-parse", "main")
	killed := time.Now()
	_ = procs[owner].Process.Kill()
	_ = procs[owner].Wait()
	other := cs[(owner+1)%3]
	if code, _, err := other.post("/hooks/web?token="+token, []byte(`{"push_data":{"tag":"6.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`)); err != nil || code != http.StatusAccepted {
		t.Fatalf("post after the kill: %d %v", code, err)
	}
	var failover time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if gitserver.Git(t, git.Bare("apps"), "rev-parse", "main") != before &&
			strings.Contains(gitserver.Git(t, git.Bare("apps"), "show", "main:apps/website/deployment.yaml"), "website:6.0.0") {
			failover = time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit after the owner was killed")
		}
	}
	fmt.Printf("\n=== replicas (PostgreSQL and the replicas on the same 2-core machine) ===\n")
	fmt.Printf("accepted webhooks, 1 process on SQLite          %.0f req/s  %v  p50 / p99 accept %v / %v\n", sqliteRPS, sqliteCodes,
		percentile(sqliteTook, 0.5).Round(10*time.Microsecond), percentile(sqliteTook, 0.99).Round(10*time.Microsecond))
	fmt.Printf("accepted webhooks, 3 replicas on PostgreSQL     %.0f req/s  %v  p50 / p99 accept %v / %v\n", pgRPS, pgCodes,
		percentile(pgTook, 0.5).Round(10*time.Microsecond), percentile(pgTook, 0.99).Round(10*time.Microsecond))
	fmt.Printf("replicas / SQLite                               %.2f\n", pgRPS/sqliteRPS)
	fmt.Printf("failover: owner killed -> next commit           %v\n", failover.Round(time.Millisecond))
}

// checkAllApplied waits until every accepted event is done, and checks that each succeeded or
// was ignored as superseded by a later one, and that none is in two commits' trailers.
func checkAllApplied(t *testing.T, c *client, git *gitserver.Server, ids []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for _, id := range ids {
		for {
			ev := c.event(id)
			st, _ := ev["status"].(string)
			if st == "succeeded" {
				break
			}
			if st == "ignored" {
				if steps := fmt.Sprint(ev["steps"]); !strings.Contains(steps, "superseded") && !strings.Contains(steps, "unchanged") {
					t.Fatalf("event %s ignored, not as superseded: %s", id, steps)
				}
				break
			}
			if st == "failed" || time.Now().After(deadline) {
				t.Fatalf("event %s not applied: %v", id, ev)
			}
			time.Sleep(20 * time.Millisecond)
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

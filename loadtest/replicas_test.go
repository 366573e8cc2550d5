//go:build loadtest

package loadtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/examples"
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
	sqliteRPS, sqliteCodes, _ := fire(sqlite, n, conc, body)
	_ = sqliteProc.Process.Kill()

	dsn := fmt.Sprintf("journal: {driver: postgres, dsn: %q}", pg.DSN)
	var cs []*client
	var procs []*exec.Cmd
	var logs []string
	for range 3 {
		c, p, l := start(dsn)
		cs, procs, logs = append(cs, c), append(procs, p), append(logs, l)
	}
	pgRPS, pgCodes, ids := fireMany(cs, n, conc, body)
	drained := time.Now()
	for _, id := range ids[max(0, len(ids)-50):] {
		for deadline := time.Now().Add(2 * time.Minute); cs[0].status(id) != "succeeded"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("event %s not applied", id)
			}
		}
	}
	fmt.Printf("backlog after the burst applied in            %v\n", time.Since(drained).Round(time.Millisecond))

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
	fmt.Printf("accepted webhooks, 1 process on SQLite          %.0f req/s  %v\n", sqliteRPS, sqliteCodes)
	fmt.Printf("accepted webhooks, 3 replicas on PostgreSQL     %.0f req/s  %v\n", pgRPS, pgCodes)
	fmt.Printf("failover: owner killed -> next commit           %v\n", failover.Round(time.Millisecond))
}

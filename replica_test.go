package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// replicas starts n imagehook processes sharing one PostgreSQL journal and one git server.
func replicas(t *testing.T, n int) ([]*daemon, *gitserver.Server, *pgtest.Server) {
	pg := pgtest.Start(t)
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", examples.Manifests())
	bin := buildBinary(t)
	var ds []*daemon
	for i := range n {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		dir := t.TempDir()
		cfg := filepath.Join(dir, "imagehook.yaml")
		yml := fmt.Sprintf(`listen: %q
dataDir: %s
journal: {driver: postgres, dsn: %q}
repos: [{name: apps, url: %s, auth: {username: bot, password: pw}}]
hooks:
  - id: web
    token: tok
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
  - id: api
    token: tok
    source: dockerhub
    targets: [{repo: apps, path: apps/api, workload: deployment/api, namespace: web, container: api}]
`, addr, filepath.Join(dir, "data"), pg.DSN, url)
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		d := &daemon{t: t, bin: bin, cfg: cfg, addr: addr}
		t.Cleanup(func() {
			if d.cmd != nil && d.cmd.ProcessState == nil {
				_ = d.cmd.Process.Kill()
				_ = d.cmd.Wait()
			}
		})
		d.start()
		ds = append(ds, d)
		_ = i
	}
	return ds, git, pg
}

// owner finds the replica working the apps queue, from its log.
func owner(t *testing.T, ds []*daemon) *daemon {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, d := range ds {
			if d.cmd.ProcessState == nil && strings.Contains(d.logText(), `now works the queue" component=replica queue=apps`) {
				return d
			}
		}
	}
	t.Fatalf("no replica works the apps queue; a log:\n%s", ds[0].logText())
	return nil
}

// burst posts from four clients, spread over the live replicas, until stop; it returns the ids
// answered 202.
func burst(ds []*daemon, stop chan struct{}) func() []string {
	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := ds[(w+i)%len(ds)]
				hook, repo := "web", "imagehook-demo/website"
				if i%2 == 1 {
					hook, repo = "api", "acme/api"
				}
				body := fmt.Sprintf(`{"push_data":{"tag":"8.%d.%d"},"repository":{"repo_name":%q}}`, w, i, repo)
				resp, err := http.Post("http://"+d.addr+"/hooks/"+hook+"?token=tok", "application/json", strings.NewReader(body))
				if err != nil {
					time.Sleep(5 * time.Millisecond) // that replica is gone, or the database is
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					var m map[string]any
					_ = json.Unmarshal(data, &m)
					mu.Lock()
					accepted = append(accepted, m["id"].(string))
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return func() []string { wg.Wait(); return accepted }
}

// checkApplied waits until every accepted event succeeded (asking a live replica) and checks that
// no event is in two commits' trailers.
func checkApplied(t *testing.T, live *daemon, git *gitserver.Server, accepted []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for _, id := range accepted {
		for {
			ev := live.event(id)
			if ev["status"] == "succeeded" {
				break
			}
			if ev["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("event %s: %v", id, ev)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	took := time.Since(start)
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Event]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s is in %d commits' trailers", id, n)
		}
	}
	// An event no commit carries must say why: its image was already in place, or a later push for
	// its target won (and that one may itself have landed before the owner died).
	for _, id := range accepted {
		if steps := fmt.Sprint(live.event(id)["steps"]); seen[id] == 0 && !strings.Contains(steps, "unchanged") && !strings.Contains(steps, "superseded") {
			t.Errorf("event %s succeeded but no commit carries it: %s", id, steps)
		}
	}
	return took
}

// TestReplicasSurviveTheOwnersDeath: three replicas on one PostgreSQL journal; four clients post a
// burst spread over them; the replica working the repository is SIGKILLed mid-burst. Every event
// answered 202 ends succeeded, none is in two commits, and the burst is done within 10 s of the kill.
func TestReplicasSurviveTheOwnersDeath(t *testing.T) {
	ds, git, _ := replicas(t, 3)
	own := owner(t, ds)
	// ?wait= answers whichever replica accepted the webhook: here one that does not work the queue.
	other := ds[0]
	if other == own {
		other = ds[1]
	}
	resp, err := http.Post("http://"+other.addr+"/hooks/web?token=tok&wait=20s", "application/json", strings.NewReader(`{"push_data":{"tag":"8.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ev map[string]any
	_ = json.Unmarshal(data, &ev)
	if resp.StatusCode != http.StatusOK || ev["status"] != "succeeded" {
		t.Fatalf("?wait= on a replica that does not own the queue: %d %s", resp.StatusCode, data)
	}
	stop := make(chan struct{})
	wait := burst(ds, stop)
	time.Sleep(500 * time.Millisecond)
	if err := own.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = own.cmd.Wait()
	killed := time.Now()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	accepted := wait()
	var live []*daemon
	for _, d := range ds {
		if d != own {
			live = append(live, d)
		}
	}
	if len(accepted) < 20 {
		t.Fatalf("only %d events accepted", len(accepted))
	}
	checkApplied(t, live[0], git, accepted, 10*time.Second-time.Since(killed))
	next := owner(t, live)
	t.Logf("%d events accepted by three replicas; owner killed; all applied %v after the kill, now worked by %s",
		len(accepted), time.Since(killed).Round(time.Millisecond), next.addr)
}

// TestReplicasRideOutADatabaseRestart: PostgreSQL stops mid-burst: the replicas answer 503 with
// Retry-After and fail /readyz meanwhile, never 2xx without a write; when it is back they recover
// by themselves and nothing that got a 2xx is lost.
func TestReplicasRideOutADatabaseRestart(t *testing.T) {
	ds, git, pg := replicas(t, 2)
	stop := make(chan struct{})
	wait := burst(ds, stop)
	time.Sleep(300 * time.Millisecond)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ds[0].addr+"/hooks/web?token=tok", "application/json", strings.NewReader(`{"push_data":{"tag":"9.9.9"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("with the database down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get("http://" + ds[1].addr + "/readyz"); err != nil || resp.StatusCode == http.StatusOK {
		t.Errorf("readyz with the database down: %v %v", resp.StatusCode, err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	accepted := wait()
	checkApplied(t, ds[0], git, accepted, 30*time.Second)
	t.Logf("%d events accepted around a database restart; all applied", len(accepted))
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/testlog"
)

// daemon runs the imagehook binary as a separate process, as production does.
type daemon struct {
	t    *testing.T
	bin  string
	cfg  string
	addr string
	cmd  *exec.Cmd
	log  *testlog.Buffer
}

// daemonFor is a daemon (not started) for the binary and config, killed (and continued first, should a test
// have stopped it) when the test ends.
func daemonFor(t *testing.T, bin, cfg, addr string) *daemon {
	d := &daemon{t: t, bin: bin, cfg: cfg, addr: addr}
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
	})
	return d
}

// logText is what the process has written so far.
func (d *daemon) logText() string { return d.log.String() }

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "imagehook")
	// -trimpath as make build and make image compile: the packages' compile is shared with theirs.
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func (d *daemon) start() {
	d.t.Helper()
	d.log = &testlog.Buffer{}
	d.cmd = exec.Command(d.bin, "serve", "--config", d.cfg)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get("http://" + d.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not ready:\n%s", d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) event(id string) map[string]any {
	resp, err := http.Get("http://" + d.addr + "/events/" + id)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func newDaemon(t *testing.T) (*daemon, *gitserver.Server) {
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", examples.Manifests())
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imagehook.yaml")
	yml := fmt.Sprintf(`listen: %q
dataDir: %s
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
`, addr, filepath.Join(dir, "data"), url)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := daemonFor(t, buildBinary(t), cfg, addr)
	return d, git
}

// gitStep is the git step of an event as GET /events/{id} answers it.
func gitStep(ev map[string]any) map[string]any {
	steps, _ := ev["steps"].([]any)
	for _, s := range steps {
		if m, _ := s.(map[string]any); m["name"] == "git" {
			return m
		}
	}
	return nil
}

// TestKillNineDuringBurst kills imagehook with SIGKILL while a burst is being accepted and applied,
// restarts it, and checks that every event answered 202 is applied, and committed once.
func TestKillNineDuringBurst(t *testing.T) {
	d, git := newDaemon(t)
	d.start()
	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
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
				hook, repo := "web", "imagehook-demo/website"
				if i%2 == 1 {
					hook, repo = "api", "acme/api"
				}
				body := fmt.Sprintf(`{"push_data":{"tag":"7.%d.%d"},"repository":{"repo_name":%q}}`, w, i, repo)
				resp, err := http.Post("http://"+d.addr+"/hooks/"+hook+"?token=tok", "application/json", strings.NewReader(body))
				if err != nil {
					return // the process is gone
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
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(accepted) < 20 {
		t.Fatalf("only %d events accepted before the kill", len(accepted))
	}

	restarted := time.Now()
	d.start()
	// Every accepted event ends succeeded, or ignored as superseded by a later journaled event of
	// the same target that succeeded: journal order wins, so a restart may find the later push
	// already applied. Anything failed, lost, still running, or in two commits is a bug.
	final := map[string]map[string]any{}
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range accepted {
		for {
			ev := d.event(id)
			if st, _ := ev["status"].(string); st == "succeeded" || st == "ignored" {
				final[id] = ev
				break
			}
			if ev["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("event %s after restart: %v\n%s", id, ev, d.log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	// The winner of each hook's target is the event journaled last among those git carries (an
	// event journaled just before the kill may never have been answered, so it is not among
	// accepted): it succeeded, the target holds its image, and no accepted event of the hook was
	// journaled after it.
	winner := map[string]map[string]any{}
	for _, e := range entries {
		ev := d.event(e.Event)
		if w := winner[e.Hook]; ev != nil && (w == nil || ev["seq"].(float64) > w["seq"].(float64)) {
			winner[e.Hook] = ev
		}
	}
	files := map[string]string{"web": "apps/website/deployment.yaml", "api": "apps/api/deployment.yaml"}
	for hook, w := range winner {
		// An event journaled but never answered may still be finishing (apply, notify).
		for deadline := time.Now().Add(30 * time.Second); w["status"] != "succeeded" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			w = d.event(w["id"].(string))
		}
		winner[hook] = w
		out, err := exec.Command("git", "--git-dir", git.Bare("apps"), "show", "HEAD:"+files[hook]).Output()
		if err != nil {
			t.Fatal(err)
		}
		img := w["push"].(map[string]any)["image"].(string)
		if tag := img[strings.LastIndex(img, ":"):]; w["status"] != "succeeded" || !regexp.MustCompile(regexp.QuoteMeta(tag)+`['"\s]`).Match(out) {
			t.Errorf("hook %s: the target does not hold the push journaled last %s (%v):\n%s", hook, img, w["status"], out)
		}
	}
	superseded := 0
	for id, ev := range final {
		w := winner[ev["hook"].(string)]
		if w == nil || ev["seq"].(float64) > w["seq"].(float64) {
			t.Errorf("accepted event %s was journaled after the event its target holds (%v)", id, w["id"])
		}
		if ev["status"] == "succeeded" {
			continue
		}
		superseded++
		if git := gitStep(ev); git["reason"] != "superseded" {
			t.Errorf("event %s ignored, not as superseded: %v", id, git)
		}
	}
	seen := map[string]int{}
	commits := map[string]bool{}
	for _, e := range entries {
		seen[e.Event]++
		commits[e.Commit] = true
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s committed %d times", id, n)
		}
	}
	t.Logf("%d events accepted before SIGKILL; all done %v after restart (%d superseded by a push journaled later); %d commits in all", len(accepted), time.Since(restarted), superseded, len(commits))

	// SIGTERM: stop accepting, finish, exit 0.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, d.log.String())
	}
}

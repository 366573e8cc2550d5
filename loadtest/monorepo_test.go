//go:build loadtest

package loadtest

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/gitserver"
)

// Sizes of the monorepo scenario: `make bench` runs it at 5,000 and 50,000 files; other sizes with
// go test -tags loadtest -run TestMonorepo -v ./loadtest -monorepo-files 200000 -monorepo-commits 20000
var (
	monorepoFiles   = flag.Int("monorepo-files", 50000, "files in the generated monorepo (500 Deployments, the rest ConfigMaps)")
	monorepoCommits = flag.Int("monorepo-commits", 20000, "commits in the generated monorepo's history")
)

const monorepoApps = 500

func monoAppPath(i int) string { return fmt.Sprintf("teams/team-%02d/app-%03d", i%100, i) }

// generateMonorepo writes a repository of ConfigMaps plus 500 Deployments spread over 100 team
// directories, with a history of small commits, through git fast-import.
func generateMonorepo(t *testing.T, bare string, files, commits int) {
	t.Helper()
	var b bytes.Buffer
	data := func(s string) { fmt.Fprintf(&b, "data %d\n%s\n", len(s), s) }
	deploy := func(i, replicas int) string {
		return fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%03d\n  namespace: team-%02d\nspec:\n  replicas: %d\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/app-%03d:1.0.0\n", i, i%100, replicas, i)
	}
	config := func(i, rev int) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-%06d\ndata:\n  revision: \"%d\"\n  feature: enabled\n", i, rev)
	}
	configPath := func(i int) string { return fmt.Sprintf("%s/config/settings-%06d.yaml", monoAppPath(i%monorepoApps), i) }
	when := time.Now().Add(-time.Duration(commits) * time.Minute).Unix()
	for c := 1; c <= commits; c++ {
		fmt.Fprintf(&b, "commit refs/heads/main\nmark :%d\ncommitter gen <gen@example.com> %d +0000\n", c, when+int64(c)*60)
		data(fmt.Sprintf("change %d", c))
		if c > 1 {
			fmt.Fprintf(&b, "from :%d\n", c-1)
		}
		if c == 1 {
			for i := range monorepoApps {
				fmt.Fprintf(&b, "M 100644 inline %s/deployment.yaml\n", monoAppPath(i))
				data(deploy(i, 2))
			}
			for i := range files - monorepoApps {
				fmt.Fprintf(&b, "M 100644 inline %s\n", configPath(i))
				data(config(i, 0))
			}
			continue
		}
		i := (c * 7919) % (files - monorepoApps)
		fmt.Fprintf(&b, "M 100644 inline %s\n", configPath(i))
		data(config(i, c))
	}
	fastImport(t, bare, &b)
}

var monoImage = regexp.MustCompile(`(image: registry.example.com/acme/app-\d+:)\S+`)

// TestMonorepo measures webhook → pushed on a big repository with the hook's path ".", against a
// fresh shallow clone + edit + commit + push with the git CLI in the same run, and the first event
// after a restart with a warm cache.
func TestMonorepo(t *testing.T) {
	// IMAGEHOOK_BIN measures another build (an older one, for a baseline in the same run).
	bin := buildBinary(t)
	for _, files := range []int{5000, *monorepoFiles} {
		t.Run(fmt.Sprint(files), func(t *testing.T) { monorepoRun(t, bin, files, *monorepoCommits) })
	}
}

func monorepoRun(t *testing.T, bin string, files, commits int) {
	git, bare := newBenchRepo(t)
	start := time.Now()
	generateMonorepo(t, bare, files, commits)
	t.Logf("generated %d files, %d commits in %s", files, commits, time.Since(start).Round(time.Millisecond))
	port := freePort(t)
	cfgPath := writeConfig(t, port, git, fmt.Sprintf(`  - id: mono
    token: %s
    source: custom
    targets: [{repo: apps, path: ".", workload: deployment/app-001, container: app}]
`, token))
	c := &client{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: 10 * time.Minute}}
	startProc := func() *exec.Cmd { return startImagehook(t, bin, cfgPath, c) }
	post := func(tag string) time.Duration {
		body := []byte(fmt.Sprintf(`{"push_data":{"tag":%q},"repository":{"repo_url":"registry.example.com","namespace":"acme","name":"app-001"}}`, tag))
		start := time.Now()
		code, m, err := c.post("/hooks/mono?wait=600s&token="+token, body)
		if err != nil || code != 200 || m["status"] != "succeeded" {
			t.Fatalf("delivery %s: %d %v %v", tag, code, m, err)
		}
		return time.Since(start)
	}
	proc := startProc()
	first := post("1.0.1")
	var seq []time.Duration
	for i := range 30 {
		seq = append(seq, post(fmt.Sprintf("2.0.%d", i)))
	}
	peak := procKB(proc.Process.Pid, "VmHWM")
	_ = proc.Process.Signal(os.Interrupt)
	_, _ = proc.Process.Wait()
	proc = startProc()
	restarted := post("3.0.0")
	peakRestart := procKB(proc.Process.Pid, "VmHWM")
	_ = proc.Process.Signal(os.Interrupt)
	_, _ = proc.Process.Wait()
	authURL := strings.Replace(git.URL, "http://", "http://bench:bench-pw@", 1) + "/apps.git"
	floor := pushFloor(t, authURL, 15)

	var cli []time.Duration
	for i := range 3 {
		work := t.TempDir()
		start := time.Now()
		gitserver.Git(t, work, "clone", "-q", "--depth", "1", authURL, ".")
		p := filepath.Join(work, monoAppPath(2), "deployment.yaml")
		data, _ := os.ReadFile(p)
		_ = os.WriteFile(p, monoImage.ReplaceAll(data, []byte(fmt.Sprintf("${1}cli-%d", i))), 0o644)
		gitserver.Git(t, work, "commit", "-qam", "cli")
		gitserver.Git(t, work, "push", "-q", "origin", "main")
		cli = append(cli, time.Since(start))
	}
	p50, cliP50, floorP50 := percentile(seq, .5), percentile(cli, .5), percentile(floor, .5)
	fmt.Printf("\n=== monorepo: %d files, %d commits, path \".\" ===\n", files, commits)
	fmt.Printf("first event (clone + index build)         %v\n", first.Round(time.Millisecond))
	fmt.Printf("webhook -> pushed, sequential, warm       p50 %v  p99 %v  (n=%d)\n", p50.Round(time.Millisecond), percentile(seq, .99).Round(time.Millisecond), len(seq))
	fmt.Printf("the server's floor: git push, full clone  p50 %v  p99 %v  (n=%d) -> imagehook p50 is %.2fx the floor\n",
		floorP50.Round(time.Millisecond), percentile(floor, .99).Round(time.Millisecond), len(floor), float64(p50)/float64(floorP50))
	fmt.Printf("first event after a restart, warm cache   %v\n", restarted.Round(time.Millisecond))
	fmt.Printf("git CLI shallow clone+edit+commit+push    p50 %v  -> imagehook is %.1fx faster\n", cliP50.Round(time.Millisecond), float64(cliP50)/float64(p50))
	fmt.Printf("peak RSS                                  %d MB (after restart %d MB)\n", peak/1024, peakRestart/1024)
}

// pushFloor measures the git server's floor for a change: n pushes of a one-file commit from a
// warm full clone with the git CLI (the clone, edit and commit are not timed; the push is).
func pushFloor(t *testing.T, url string, n int) []time.Duration {
	t.Helper()
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", url, ".")
	var took []time.Duration
	for i := range n {
		p := filepath.Join(work, monoAppPath(3), "deployment.yaml")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, monoImage.ReplaceAll(data, []byte(fmt.Sprintf("${1}floor-%d", i))), 0o644); err != nil {
			t.Fatal(err)
		}
		gitserver.Git(t, work, "commit", "-qam", "floor")
		start := time.Now()
		gitserver.Git(t, work, "push", "-q", "origin", "main")
		took = append(took, time.Since(start))
	}
	return took
}

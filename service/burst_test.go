package service

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/internal/gitserver"
)

// TestBurstWithAnotherWriter sends 4 pushes for each of 50 workloads at once while another writer
// pushes commits in a loop: every event succeeds, a burst is coalesced into few commits, the last
// push per workload wins, and none of the other writer's commits is lost.
func TestBurstWithAnotherWriter(t *testing.T) {
	const workloads, pushes = 50, 4
	repo := fstest.MapFS{}
	var hooks strings.Builder
	hooks.WriteString("  - id: burst\n    token: ${HOOK_TOKEN}\n    source: dockerhub\n    targets:\n")
	for i := range workloads {
		name := fmt.Sprintf("app-%02d", i)
		repo["apps/"+name+"/deployment.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %[1]s\n  namespace: burst\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: acme/%[1]s:0.0.0\n", name))}
		fmt.Fprintf(&hooks, "      - {repo: apps, path: apps/%[1]s, workload: deployment/%[1]s, namespace: burst, container: app}\n", name)
	}
	h := newHarnessRepo(t, repo, hooks.String())
	before, _ := strconv.Atoi(h.gitOut("rev-list", "--count", "main"))

	// The other writer: clone, commit, push, rebasing when imagehook got there first.
	other := t.TempDir()
	gitserver.Git(t, other, "clone", "-q", h.git.Bare("apps"), ".")
	stop := make(chan struct{})
	var otherCommits []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ { // a busy colleague for the first seconds of the burst
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprintf("other writer %d", i)
			_ = os.WriteFile(filepath.Join(other, "notes.txt"), []byte(msg+"\n"), 0o644)
			gitserver.Git(t, other, "add", "notes.txt")
			gitserver.Git(t, other, "commit", "-qm", msg)
			for try := 0; try < 20; try++ {
				if gitQuiet(other, "push", "-q", "origin", "main") == nil {
					otherCommits = append(otherCommits, msg)
					break
				}
				_ = gitQuiet(other, "pull", "-q", "--rebase", "origin", "main")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	type sent struct{ id, workload string }
	var mu sync.Mutex
	var all []sent
	var posts sync.WaitGroup
	for i := range workloads {
		posts.Add(1)
		go func() {
			defer posts.Done()
			name := fmt.Sprintf("app-%02d", i)
			for v := 1; v <= pushes; v++ {
				body := fmt.Sprintf(`{"push_data":{"tag":"1.0.%d"},"repository":{"repo_name":"acme/%s"}}`, v, name)
				code, resp := h.post("/hooks/burst?token="+hookToken+"&workload=deployment/"+name, []byte(body))
				if code != http.StatusAccepted {
					t.Errorf("%s: %d %v", name, code, resp)
					return
				}
				mu.Lock()
				all = append(all, sent{resp["id"].(string), name})
				mu.Unlock()
				time.Sleep(100 * time.Millisecond) // spread the burst over several batches
			}
		}()
	}
	posts.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range all {
		for {
			req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+s.id, nil)
			_, ev := h.do(req)
			if ev["status"] == "succeeded" {
				break
			}
			if ev["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("event %s for %s: %v", s.id, s.workload, ev)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()

	log := h.gitOut("log", "--format=%s", "main")
	after, _ := strconv.Atoi(h.gitOut("rev-list", "--count", "main"))
	ours := after - before - len(otherCommits)
	t.Logf("%d events, %d imagehook commits, %d commits by the other writer", len(all), ours, len(otherCommits))
	if ours >= 20 {
		t.Errorf("%d commits for a burst of %d events, want under 20", ours, len(all))
	}
	for _, c := range otherCommits {
		if !strings.Contains(log, c+"\n") && !strings.HasSuffix(log, c) {
			t.Errorf("the other writer's commit %q was lost", c)
		}
	}
	for i := range workloads {
		name := fmt.Sprintf("app-%02d", i)
		got := h.gitOut("show", "main:apps/"+name+"/deployment.yaml")
		if !strings.Contains(got, "image: acme/"+name+":1.0.4\n") && !strings.HasSuffix(got, "image: acme/"+name+":1.0.4") {
			t.Errorf("%s: want the last push 1.0.4:\n%s", name, got)
		}
	}
}

func gitQuiet(dir string, args ...string) error {
	cmd := gitserver.Command(dir, args...)
	return cmd.Run()
}

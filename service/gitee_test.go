package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/forgetest"
	"github.com/imagehook/imagehook/internal/gitserver"
)

// TestPullRequestsOnGiteeContract runs pull-request write-back through the whole flow on Gitee's
// documented contract (gitee.com cannot run here; internal/forgetest plays its OpenAPI v5 over a
// real git repository): a push opens a pull request with its label; a second push updates the same
// one; a forged Gitee webhook is refused and a genuine one (Gitee's password) only makes imagehook
// read the API; merged on Gitee, the events complete from the merge commit; a pull request closed
// unmerged cancels its event. Gitee's token is in no log line and no event.
func TestPullRequestsOnGiteeContract(t *testing.T) {
	const giteeToken = "gitee-pat-do-not-log-0123456789"
	git := gitserver.New(t, "imagehook", gitPassword)
	url := git.NewRepo(t, "platform/apps", examples.Manifests())
	bare := git.Bare("platform/apps")
	api := forgetest.NewGitee(giteeToken, "platform/apps")
	api.Branch, api.Merge = branchIn(bare), mergeIn(bare)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %[1]s
repos:
  - name: apps
    url: %[2]s
    auth: {username: imagehook, password: %[3]s}
    author: {name: imagehook-test, email: imagehook@example.com}
    writeBack:
      mode: pullRequest
      provider: gitee
      api: %[4]s/api/v5
      token: %[5]s
      labels: [imagehook]
      webhookSecret: %[6]s
      pollInterval: 1h
hooks:
  - id: custom
    token: %[7]s
    source: custom
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, filepath.Join(dir, "data"), url, gitPassword, srv.URL, giteeToken, forgeSecret, hookToken)
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	t.Cleanup(func() {
		h.stop()
		for _, secret := range []string{giteeToken, gitPassword, forgeSecret, hookToken} {
			if strings.Contains(h.logs.String(), secret) {
				t.Errorf("a secret appears in the log:\n%s", h.logs.String())
			}
		}
	})
	push := func(tag string) string {
		t.Helper()
		body := fmt.Sprintf(`{"push_data":{"tag":%q,"pusher":"ci-bot"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`, tag)
		code, ev := h.post("/hooks/custom?wait=30s&token="+hookToken, []byte(body))
		if code != http.StatusAccepted || ev["status"] != "awaiting merge" {
			t.Fatalf("push %s: %d %v\n%s", tag, code, ev, h.logs.String())
		}
		return fmt.Sprint(ev["id"])
	}
	event := func(id string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
		_, ev := h.do(req)
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), giteeToken) {
			t.Errorf("the event holds Gitee's token: %s", raw)
		}
		return ev
	}
	waitStatus := func(id, want string) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			ev := event(id)
			if ev["status"] == want {
				return ev
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: status %v, want %s\n%v\nlog:\n%s", id, ev["status"], want, ev, h.logs.String())
			}
		}
	}
	openPRs := func() []forgetest.GiteePR {
		api.Mu.Lock()
		defer api.Mu.Unlock()
		var out []forgetest.GiteePR
		for i := int64(1); i < api.Next; i++ {
			if api.PRs[i].State == "open" {
				out = append(out, *api.PRs[i])
			}
		}
		return out
	}

	// 1. A push opens a pull request from imagehook's branch, with its label.
	first := push("2.0.0")
	prs := openPRs()
	if len(prs) != 1 || prs[0].Head != "imagehook/deployment/website" || prs[0].Labels != "imagehook" || !strings.Contains(prs[0].Title, "website:2.0.0") {
		t.Fatalf("open pull requests: %+v", prs)
	}
	number := prs[0].Number
	// 2. A second push updates the same pull request.
	second := push("2.1.0")
	if prs := openPRs(); len(prs) != 1 || prs[0].Number != number || !strings.Contains(prs[0].Title, "website:2.1.0") {
		t.Fatalf("after the second push: %+v", prs)
	}
	head := api.Branch("imagehook/deployment/website")

	// 3. Merged on Gitee; a forged webhook is refused, a genuine one makes imagehook look.
	api.Mu.Lock()
	pr := api.PRs[number]
	sha, err := api.Merge(pr.Head, pr.Base)
	if err == nil {
		pr.State, pr.MergeSha, pr.Sha = "merged", sha, head
		api.Merges = append(api.Merges, sha+" base "+head)
	}
	api.Mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"action":"merge","pull_request":{"number":1}}`)
	for _, hdr := range [][]string{nil, {"X-Gitee-Token", "guess"}, {"X-Gitee-Token", "AAAA", "X-Gitee-Timestamp", fmt.Sprint(time.Now().UnixMilli())}} {
		if code, resp := h.post("/forges/apps", body, hdr...); code != http.StatusUnauthorized {
			t.Errorf("forged Gitee webhook %v: %d %v", hdr, code, resp)
		}
	}
	if st := event(first)["status"]; st != "awaiting merge" {
		t.Fatalf("a refused webhook completed an event: %v", st)
	}
	if code, resp := h.post("/forges/apps", body, "X-Gitee-Event", "Merge Request Hook", "X-Gitee-Token", forgeSecret); code != http.StatusAccepted {
		t.Fatalf("genuine Gitee webhook: %d %v", code, resp)
	}
	for _, id := range []string{first, second} {
		ev := waitStatus(id, "succeeded")
		if c := step(ev, "git")["commit"]; c != sha {
			t.Errorf("event %s: commit %v, want the merge commit %s", id, c, sha)
		}
	}
	if got := gitserver.Git(t, bare, "show", "main:apps/website/deployment.yaml"); !strings.Contains(got, "website:2.1.0") {
		t.Errorf("main after the merge:\n%s", got)
	}

	// 4. Closed on Gitee without merging: the event is cancelled.
	third := push("3.0.0")
	prs = openPRs()
	if len(prs) != 1 || prs[0].Number == number {
		t.Fatalf("after the merge: %+v", prs)
	}
	api.Mu.Lock()
	api.PRs[prs[0].Number].State = "closed"
	api.Mu.Unlock()
	if code, _ := h.post("/forges/apps", body, "X-Gitee-Token", forgeSecret); code != http.StatusAccepted {
		t.Fatal("genuine webhook refused")
	}
	waitStatus(third, "cancelled")
	api.Mu.Lock()
	defer api.Mu.Unlock()
	for _, u := range api.URLs {
		if strings.Contains(u, giteeToken) && !strings.HasPrefix(u, "GET ") {
			t.Errorf("the token in a write's URL: %s", u)
		}
	}
}

// branchIn reads a branch's head in a bare repository ("" when it has none).
func branchIn(bare string) func(name string) string {
	return func(name string) string {
		out, err := gitserver.Command(bare, "rev-parse", "refs/heads/"+name).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
}

// mergeIn merges as a person on the forge does: a merge commit of head on base, in the bare
// repository; it returns the merge commit.
func mergeIn(bare string) func(head, base string) (string, error) {
	return func(head, base string) (string, error) {
		work, err := os.MkdirTemp("", "forge-merge-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(work)
		for _, args := range [][]string{{"clone", "-q", "-b", base, bare, "."}, {"merge", "-q", "--no-ff", "-m", "Merge the pull request", "origin/" + head}, {"push", "-q", "origin", base}} {
			if out, err := gitserver.Command(work, args...).CombinedOutput(); err != nil {
				return "", fmt.Errorf("git %s: %v: %s", args[0], err, out)
			}
		}
		out, err := gitserver.Command(work, "rev-parse", "HEAD").Output()
		return strings.TrimSpace(string(out)), err
	}
}

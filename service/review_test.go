package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/giteatest"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/smtptest"
)

const forgeSecret = "forge-webhook-s3cret-do-not-log"

// giteaPR is what the tests read of Gitea's pull requests.
type giteaPR struct {
	Number    int64  `json:"number"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	State     string `json:"state"`
	Merged    bool   `json:"merged"`
	Mergeable bool   `json:"mergeable"`
	MergeSHA  string `json:"merge_commit_sha"`
	Head      struct {
		Ref string `json:"ref"`
		Sha string `json:"sha"`
	} `json:"head"`
	Labels []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

// TestPullRequestsOnGitea runs pull-request write-back against a real Gitea: a push opens a pull
// request (title, body, label); a second push updates the same one; a base branch that moved is not
// a conflict; merging it completes every event it carried from the merge commit and mails the
// report; a pull request closed unmerged cancels its event; the forge's webhook is checked.
func TestPullRequestsOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	g.NewRepo(t, "apps", examples.Manifests())
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)

	dir := t.TempDir()
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %[1]s
repos:
  - name: apps
    url: %[2]s/%[3]s/apps.git
    auth: {username: %[3]s, password: %[4]s}
    author: {name: imagehook-test, email: imagehook@example.com}
    writeBack:
      mode: pullRequest
      provider: gitea
      api: %[2]s/api/v1
      token: %[5]s
      labels: [imagehook, deploy]
      webhookSecret: %[6]s
      pollInterval: 1h
mail: {host: 127.0.0.1, port: %[7]d, tls: none, username: %[8]s, password: %[9]s, from: %[8]s, to: [ops@example.com], language: en}
hooks:
  - id: custom
    token: %[10]s
    source: custom
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, filepath.Join(dir, "data"), g.URL, giteatest.User, giteatest.Password, g.Token, forgeSecret,
		smtpSrv.Port, smtptest.User, smtptest.Password, hookToken)
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	t.Cleanup(func() {
		h.stop()
		for _, secret := range []string{giteatest.Password, g.Token, forgeSecret, hookToken, smtptest.Password} {
			if strings.Contains(h.logs.String(), secret) {
				t.Errorf("a secret appears in the log:\n%s", h.logs.String())
			}
		}
	})
	// Gitea tells imagehook when a pull request changes; polling is an hour away, so only the
	// webhook can complete the events below.
	if code := g.API(t, http.MethodPost, "/repos/"+giteatest.User+"/apps/hooks", map[string]any{
		"type": "gitea", "active": true, "events": []string{"pull_request"},
		"config": map[string]string{"url": "http://" + h.addr + "/forges/apps", "content_type": "json", "secret": forgeSecret},
	}, nil); code != http.StatusCreated {
		t.Fatalf("create webhook: HTTP %d", code)
	}
	repoAPI := "/repos/" + giteatest.User + "/apps"
	openPRs := func() []giteaPR {
		var prs []giteaPR
		g.API(t, http.MethodGet, repoAPI+"/pulls?state=open", nil, &prs)
		return prs
	}
	push := func(tag string) map[string]any {
		t.Helper()
		body := fmt.Sprintf(`{"push_data":{"tag":%q,"pusher":"ci-bot"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`, tag)
		code, ev := h.post("/hooks/custom?wait=30s&token="+hookToken, []byte(body))
		// ?wait= answers once the change is in its pull request: a merge may take hours.
		if code != http.StatusAccepted || ev["status"] != "awaiting merge" {
			t.Fatalf("push %s: %d %v", tag, code, ev)
		}
		return ev
	}
	event := func(id string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
		_, ev := h.do(req)
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

	// 1. A push opens a pull request and waits for its merge.
	first := push("2.0.0")
	firstID := fmt.Sprint(first["id"])
	first = waitStatus(firstID, "awaiting merge")
	pr := step(first, "git")["pullRequest"].(map[string]any)
	prs := openPRs()
	if len(prs) != 1 || float64(prs[0].Number) != pr["number"] || prs[0].Head.Ref != "imagehook/deployment/website" {
		t.Fatalf("open pull requests %+v, event's %v", prs, pr)
	}
	if !strings.Contains(prs[0].Title, "deployment/website website to registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:2.0.0") ||
		!strings.Contains(prs[0].Body, firstID) || !strings.Contains(prs[0].Body, "`ci-bot`") || len(prs[0].Labels) != 2 {
		t.Errorf("pull request: title %q labels %v body:\n%s", prs[0].Title, prs[0].Labels, prs[0].Body)
	}
	number := prs[0].Number

	// 2. A second push for the target updates the same pull request: one branch, one pull request.
	second := push("2.1.0")
	secondID := fmt.Sprint(second["id"])
	waitStatus(secondID, "awaiting merge")
	if prs := openPRs(); len(prs) != 1 || prs[0].Number != number || !strings.Contains(prs[0].Title, "website:2.1.0") || !strings.Contains(prs[0].Body, firstID) {
		t.Fatalf("after the second push: %+v", prs)
	}

	// 3. The base branch moves (someone commits to main): the branch is rebuilt on the new base.
	var file struct {
		Commit struct {
			SHA string `json:"sha"`
		} `json:"commit"`
	}
	if code := g.API(t, http.MethodPost, repoAPI+"/contents/NOTES.md", map[string]any{
		"content": "VW5yZWxhdGVkIGNoYW5nZQo=", "message": "an unrelated change", "branch": "main",
	}, &file); code != http.StatusCreated {
		t.Fatalf("commit to main: HTTP %d", code)
	}
	third := push("2.2.0")
	thirdID := fmt.Sprint(third["id"])
	waitStatus(thirdID, "awaiting merge")
	clone := t.TempDir()
	gitserver.Git(t, clone, "clone", "-q", g.CloneURL("apps"), ".")
	gitserver.Git(t, clone, "fetch", "-q", "origin", "imagehook/deployment/website")
	if parent := gitserver.Git(t, clone, "rev-parse", "FETCH_HEAD^"); parent != file.Commit.SHA {
		t.Errorf("the branch is built on %s, not on the moved base %s", parent, file.Commit.SHA)
	}
	if n := gitserver.Git(t, clone, "rev-list", "--count", "origin/main..FETCH_HEAD"); n != "1" {
		t.Errorf("the branch holds %s commits over the base, want 1", n)
	}
	var cur giteaPR
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		g.API(t, http.MethodGet, fmt.Sprintf("%s/pulls/%d", repoAPI, number), nil, &cur)
		if cur.Mergeable || time.Now().After(deadline) {
			break
		}
	}
	if !cur.Mergeable {
		t.Fatalf("the pull request is not mergeable after the base moved: %+v", cur)
	}

	// A forged webhook is refused; a genuine one only makes imagehook read the pull request.
	body := []byte(`{"action":"closed","pull_request":{"number":1,"merged":true}}`)
	for _, hdr := range [][]string{nil, {"X-Gitea-Signature", strings.Repeat("0", 64)}, {"X-Gitea-Signature", sign("wrong-secret", body)}} {
		if code, resp := h.post("/forges/apps", body, hdr...); code != http.StatusUnauthorized {
			t.Errorf("forge webhook with %v: %d %v", hdr, code, resp)
		}
	}
	if code, _ := h.post("/forges/apps", body, "X-Gitea-Signature", sign(forgeSecret, body)); code != http.StatusAccepted {
		t.Errorf("genuine forge webhook: %d", code)
	}
	if st := event(firstID)["status"]; st != "awaiting merge" {
		t.Fatalf("a webhook's words completed an event: %v", st)
	}

	// 4. Merging completes every event the pull request carried, from the merge commit; mail goes.
	// Gitea answers 405 while it is still checking mergeability after a push: try again.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code := g.API(t, http.MethodPost, fmt.Sprintf("%s/pulls/%d/merge", repoAPI, number), map[string]any{"Do": "merge"}, nil)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusMethodNotAllowed || time.Now().After(deadline) {
			t.Fatalf("merge: HTTP %d", code)
		}
	}
	g.API(t, http.MethodGet, fmt.Sprintf("%s/pulls/%d", repoAPI, number), nil, &cur)
	for _, id := range []string{firstID, secondID, thirdID} {
		ev := waitStatus(id, "succeeded")
		if c := step(ev, "git")["commit"]; c != cur.MergeSHA {
			t.Errorf("event %s: commit %v, want the merge commit %s", id, c, cur.MergeSHA)
		}
	}
	gitserver.Git(t, clone, "pull", "-q", "origin", "main")
	if data, _ := os.ReadFile(filepath.Join(clone, "apps/website/deployment.yaml")); !strings.Contains(string(data), "website:2.2.0") {
		t.Errorf("main after the merge:\n%s", data)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if msgs, _ := smtpSrv.Messages(); len(msgs) > 0 {
			if !strings.Contains(string(msgs[len(msgs)-1]), "2.2.0") {
				t.Errorf("mail:\n%s", msgs[len(msgs)-1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no mail after the merge")
		}
	}

	// 5. A pull request closed without merging cancels its event.
	fourth := push("3.0.0")
	fourthID := fmt.Sprint(fourth["id"])
	fourth = waitStatus(fourthID, "awaiting merge")
	n2 := int64(step(fourth, "git")["pullRequest"].(map[string]any)["number"].(float64))
	if n2 == number {
		t.Fatalf("a merged pull request was reused")
	}
	if code := g.API(t, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", repoAPI, n2), map[string]any{"state": "closed"}, nil); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("close: HTTP %d", code)
	}
	waitStatus(fourthID, "cancelled")
	if strings.Contains(gitserver.Git(t, clone, "ls-remote", "origin", "main"), "3.0.0") {
		t.Error("a closed pull request reached main")
	}
}

// sign is a Gitea webhook signature: the hex HMAC-SHA256 of the body.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

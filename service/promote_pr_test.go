package service

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/internal/giteatest"
	"github.com/imagehook/imagehook/internal/manifesttest"
	"github.com/imagehook/imagehook/promote"
)

// TestPromotionByPullRequestOnGitea: with approval: {pullRequest: true}, the promotion into staging
// opens a pull request on a real Gitea, and merging it is the approval: staging then runs the digest
// dev ran, from the promotion's commit with its trailers.
func TestPromotionByPullRequestOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	g.NewRepo(t, "stages", manifesttest.Stages("dev", "staging"))
	dir := t.TempDir()
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	yml := fmt.Sprintf(`listen: "127.0.0.1:0"
dataDir: %[1]s
repos:
  - name: apps
    url: %[2]s/%[3]s/stages.git
    auth: {username: %[3]s, password: %[4]s}
    author: {name: imagehook-test, email: imagehook@example.com}
    writeBack: {mode: pullRequest, provider: gitea, api: %[2]s/api/v1, token: %[5]s, pollInterval: 1s, branch: "imagehook/{{ .Target.Path }}"}
hooks: [{id: site, token: %[6]s, source: custom, pipeline: website}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %[7]s}
      - {name: staging, after: dev, gates: {approval: {pullRequest: true}}, targets: %[8]s}
`, filepath.Join(dir, "data"), g.URL, giteatest.User, giteatest.Password, g.Token, hookToken, target("dev"), target("staging"))
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}, tweak: func(o *Options) { o.Promote = promote.Options{Interval: 50 * time.Millisecond} }}
	h.start()
	t.Cleanup(h.stop)
	r := &prRig{t: t, g: g, h: h, repo: "stages", api: "/repos/" + giteatest.User + "/stages"}

	digest := "sha256:" + strings.Repeat("3", 64)
	body := fmt.Sprintf(`{"push_data":{"tag":"6.0.0","digest":%q},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`, digest)
	code, ev := h.post("/hooks/site?wait=30s&token="+hookToken, []byte(body))
	if code != http.StatusAccepted || ev["status"] != "awaiting merge" {
		t.Fatalf("push: %d %v", code, ev)
	}
	dev := fmt.Sprint(ev["id"])
	r.merge(prNumber(r.status(dev, "awaiting merge")))
	r.status(dev, "succeeded")

	// The promotion opens its own pull request; nothing reaches staging until it is merged.
	var promotion string
	for deadline := time.Now().Add(60 * time.Second); promotion == ""; time.Sleep(50 * time.Millisecond) {
		var v promote.PipelineView
		h.getJSON("/pipelines/website", &v)
		promotion = v.Stages[1].Promotion
		if time.Now().After(deadline) {
			t.Fatalf("no promotion into staging: %+v", v.Stages[1])
		}
	}
	pev := r.status(promotion, "awaiting merge")
	if main := r.mainHolds("envs/staging/website/deployment.yaml"); strings.Contains(main, "6.0.0") {
		t.Fatal("staging changed before its pull request was merged")
	}
	pr := r.merge(prNumber(pev))
	if !pr.Merged {
		t.Fatalf("pull request not merged: %+v", pr)
	}
	r.status(promotion, "succeeded")
	if main := r.mainHolds("envs/staging/website/deployment.yaml"); !strings.Contains(main, "website:6.0.0@"+digest) {
		t.Fatalf("staging after the merge:\n%s", main)
	}
	var v promote.PipelineView
	h.getJSON("/pipelines/website", &v)
	if s := v.Stages[1]; s.State != promote.ReasonCurrent {
		t.Errorf("staging after the merge: %+v", s)
	}
}

package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/forgetest"
	"github.com/imagehook/imagehook/internal/gitserver"
)

// TestChangeRequestsOnCodeupContract runs pull-request write-back through the whole flow on
// Codeup's documented contract (Codeup cannot run here; internal/forgetest plays its change
// requests over a real git repository): the repository found by the URL's path, a push opens a
// change request, a second push makes a new source version of the same one, a forged webhook is
// refused and a genuine X-Codeup-Token only makes imagehook read the API, merged on Codeup the
// events complete from mergedRevision, and a closed one cancels its event. The token is in no log
// line and no event.
func TestChangeRequestsOnCodeupContract(t *testing.T) {
	const yunxiaoToken = "pt-yunxiao-do-not-log-0fbG35af"
	const org = "60de7a6852743a5162b5f957"
	git := gitserver.New(t, "imagehook", gitPassword)
	url := git.NewRepo(t, org+"/platform/apps", examples.Manifests())
	bare := git.Bare(org + "/platform/apps")
	api := forgetest.NewCodeup(yunxiaoToken, org, "platform/apps", 2813489)
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
      provider: codeup
      api: %[4]s
      token: %[5]s
      webhookSecret: %[6]s
      pollInterval: 1h
hooks:
  - id: custom
    token: %[7]s
    source: custom
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, filepath.Join(dir, "data"), url, gitPassword, srv.URL, yunxiaoToken, forgeSecret, hookToken)
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}}
	h.start()
	t.Cleanup(func() {
		h.stop()
		for _, secret := range []string{yunxiaoToken, gitPassword, forgeSecret, hookToken} {
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
		if raw, _ := json.Marshal(ev); strings.Contains(string(raw), yunxiaoToken) {
			t.Errorf("the event holds the token: %s", raw)
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
	open := func() []forgetest.CodeupCR {
		api.Mu.Lock()
		defer api.Mu.Unlock()
		var out []forgetest.CodeupCR
		for i := int64(1); i < api.Next; i++ {
			if s := api.CRs[i].Status; s != "MERGED" && s != "CLOSED" {
				out = append(out, *api.CRs[i])
			}
		}
		return out
	}

	first := push("2.0.0")
	crs := open()
	if len(crs) != 1 || crs[0].Source != "imagehook/deployment/website" || crs[0].Target != "main" || !strings.Contains(crs[0].Title, "website:2.0.0") {
		t.Fatalf("open change requests: %+v", crs)
	}
	number := crs[0].LocalID
	second := push("2.1.0")
	if crs := open(); len(crs) != 1 || crs[0].LocalID != number || !strings.Contains(crs[0].Title, "website:2.1.0") || len(crs[0].Patches) < 2 {
		t.Fatalf("after the second push: %+v", crs)
	}

	// Merged on Codeup; the webhook is checked, and only makes imagehook read.
	api.Mu.Lock()
	cr := api.CRs[number]
	sha, err := api.Merge(cr.Source, cr.Target)
	if err == nil {
		cr.Status, cr.Merged = "MERGED", sha
	}
	api.Mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"object_kind":"merge_request","object_attributes":{"state":"merged","iid":1}}`)
	for _, hdr := range [][]string{nil, {"X-Codeup-Token", "guess"}, {"X-Gitlab-Token", forgeSecret}} {
		if code, resp := h.post("/forges/apps", body, hdr...); code != http.StatusUnauthorized {
			t.Errorf("forged Codeup webhook %v: %d %v", hdr, code, resp)
		}
	}
	if st := event(first)["status"]; st != "awaiting merge" {
		t.Fatalf("a refused webhook completed an event: %v", st)
	}
	if code, resp := h.post("/forges/apps", body, "Codeup-Event", "Merge Request Hook", "X-Codeup-Token", forgeSecret); code != http.StatusAccepted {
		t.Fatalf("genuine Codeup webhook: %d %v", code, resp)
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

	third := push("3.0.0")
	crs = open()
	if len(crs) != 1 || crs[0].LocalID == number {
		t.Fatalf("after the merge: %+v", crs)
	}
	api.Mu.Lock()
	api.CRs[crs[0].LocalID].Status = "CLOSED"
	api.Mu.Unlock()
	if code, _ := h.post("/forges/apps", body, "X-Codeup-Token", forgeSecret); code != http.StatusAccepted {
		t.Fatal("genuine webhook refused")
	}
	waitStatus(third, "cancelled")
}

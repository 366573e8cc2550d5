package service

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// workloadsRepo is the example manifests plus n deployments, apps/w-NNN, and a hook targeting
// each of them.
func workloadsRepo(t testing.TB, n int) (*harness, string) {
	t.Helper()
	files := map[string]string{}
	var hook strings.Builder
	hook.WriteString("  - id: many\n    token: ${HOOK_TOKEN}\n    source: dockerhub\n    targets:\n")
	for i := range n {
		name := fmt.Sprintf("w-%03d", i)
		files["apps/"+name+"/deployment.yaml"] = fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: web}
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/%[1]s:1.0.%[2]d
`, name, i)
		fmt.Fprintf(&hook, "      - {repo: apps, path: apps/%[1]s, workload: deployment/%[1]s, namespace: web, container: app}\n", name)
	}
	h := newHarnessRepo(t, withFiles(t, files), hook.String())
	// One event fills the repository's cache, as the first webhook does.
	code, ev := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, []byte(`{"push_data":{"tag":"2.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("first event: %d %v", code, ev)
	}
	return h, "http://" + h.addr + "/"
}

func getStatus(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status page: %d %s", resp.StatusCode, data)
	}
	return string(data)
}

// TestStatusPageReadsTheCachedTip (trust row 4): with 150 workload targets, four views of the
// status page make not one request to the git server (the run made 151 fetches per view,
// under the repository lock), and each row shows what git holds; a push that lands is shown at
// the next view.
func TestStatusPageReadsTheCachedTip(t *testing.T) {
	h, url := workloadsRepo(t, 150)
	before := h.git.Requests.Load()
	var page string
	for range 4 {
		page = getStatus(t, url)
	}
	if n := h.git.Requests.Load() - before; n != 0 {
		t.Errorf("four status pages made %d requests to the git server, want 0", n)
	}
	for _, want := range []string{"imagehook-demo/w-000:1.0.0", "imagehook-demo/w-149:1.0.149", "imagehook-demo/website:2.0.0", `id="open"`} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	code, ev := h.post("/hooks/many?wait=30s&token="+hookToken+"&workload=deployment/w-007", []byte(`{"push_data":{"tag":"9.9.9"},"repository":{"repo_name":"imagehook-demo/w-007"}}`))
	if code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("push: %d %v", code, ev)
	}
	if page := getStatus(t, url); !strings.Contains(page, "imagehook-demo/w-007:9.9.9") {
		t.Error("the status page does not show the push that landed")
	}
}

// BenchmarkStatusPage times one view of the status page with 1 and with 150 workload targets,
// in the same run: its cost is flat in the targets (the run took 7.3 s for 150).
func BenchmarkStatusPage(b *testing.B) {
	for _, n := range []int{1, 150} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			_, url := workloadsRepo(b, n)
			getStatus(b, url)
			for b.Loop() {
				getStatus(b, url)
			}
		})
	}
}

//go:build loadtest

package loadtest

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileManifests measures the peak RSS of one event when colleagues have committed 40 files
// of 4 MiB and 40 dense files just under the 1 MiB limit that mention the workload under its path
// (they pack to a few KB in git), against the same event on a clean repository, in the same run.
// Run it with `make bench` (or go test -tags loadtest -run TestHostileManifests -v ./loadtest).
func TestHostileManifests(t *testing.T) {
	bin := buildBinary(t)
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/web:1.0.0\n"
	big := "# web\n" + strings.Repeat("web: [web, web, web, web, web, web, web, web, web, web]\n", 4<<20/56)
	dense := "# web\nweb: [" + strings.Repeat("1,", (1<<20-64)/2) + "1]\n"
	run := func(name string, hostile bool) (peakMB int, took time.Duration, skipped int) {
		git, bare := newBenchRepo(t)
		var b bytes.Buffer
		data := func(s string) { fmt.Fprintf(&b, "data %d\n%s\n", len(s), s) }
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter gen <gen@example.com> %d +0000\n", time.Now().Unix())
		data("initial")
		fmt.Fprintf(&b, "M 100644 inline apps/web/deployment.yaml\n")
		data(deploy)
		if hostile {
			for i := range 40 {
				fmt.Fprintf(&b, "M 100644 inline apps/web/big-%02d.yaml\n", i)
				data(big)
				fmt.Fprintf(&b, "M 100644 inline apps/web/dense-%02d.yaml\n", i)
				data(dense)
			}
		}
		fastImport(t, bare, &b)
		port := freePort(t)
		cfgPath := writeConfig(t, port, git, fmt.Sprintf(`  - id: web
    token: %s
    source: custom
    targets: [{repo: apps, path: apps/web, workload: deployment/web, namespace: team, container: app}]
`, token))
		c := &client{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: 5 * time.Minute}}
		proc := startImagehook(t, bin, cfgPath, c)
		defer func() { _ = proc.Process.Kill(); _, _ = proc.Process.Wait() }()
		body := []byte(`{"push_data":{"tag":"1.1.0"},"repository":{"repo_url":"registry.example.com","namespace":"acme","name":"web"}}`)
		start := time.Now()
		code, m, err := c.post("/hooks/web?wait=300s&token="+token, body)
		took = time.Since(start)
		if err != nil || code != 200 || m["status"] != "succeeded" {
			t.Fatalf("%s: %d %v %v", name, code, m, err)
		}
		for _, s := range m["steps"].([]any) {
			if sk, ok := s.(map[string]any)["skipped"].([]any); ok {
				skipped += len(sk)
			}
		}
		return procKB(proc.Process.Pid, "VmHWM") / 1024, took, skipped
	}
	cleanPeak, cleanTook, _ := run("clean", false)
	hostilePeak, hostileTook, skipped := run("hostile", true)
	fmt.Printf("\n=== hostile manifests: 40 x 4 MiB + 40 x 1 MiB dense files under the target path ===\n")
	fmt.Printf("clean repository    peak RSS %d MB, webhook -> pushed %v\n", cleanPeak, cleanTook.Round(time.Millisecond))
	fmt.Printf("hostile repository  peak RSS %d MB, webhook -> pushed %v, %d files skipped and named on the event\n", hostilePeak, hostileTook.Round(time.Millisecond), skipped)
	if hostilePeak >= 150 {
		t.Errorf("peak RSS %d MB with hostile files, want under 150 MB", hostilePeak)
	}
}

//go:build loadtest

package loadtest

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/manifesttest"
)

// TestHostileManifests measures the peak RSS of one event when colleagues have committed twelve
// hostile 4 MiB files that mention the workload under its path (they pack to a few KB in git) —
// dense flow collections, aliases, CR-only and CRLF line breaks, compact sequences, implicit flow
// pairs, a dense second document, thousands of copies of the workload — against the same event on
// a clean repository, in the same run: the target lands, each hostile file is named on the event,
// and the peak stays under 150 MB. Run it with `make bench` (or go test -tags loadtest -run
// TestHostileManifests -v ./loadtest).
func TestHostileManifests(t *testing.T) {
	bin := buildBinary(t)
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/web:1.0.0\n"
	hostile := manifesttest.HostileFiles(4<<20, deploy)
	run := func(name string, withHostile bool) (peakMB int, took time.Duration, skipped []string) {
		git, bare := newBenchRepo(t)
		var b bytes.Buffer
		data := func(s string) { fmt.Fprintf(&b, "data %d\n%s\n", len(s), s) }
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter gen <gen@example.com> %d +0000\n", time.Now().Unix())
		data("initial")
		fmt.Fprintf(&b, "M 100644 inline apps/web/deployment.yaml\n")
		data(deploy)
		if withHostile {
			for name, content := range hostile {
				fmt.Fprintf(&b, "M 100644 inline apps/web/%s\n", name)
				data(content)
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
				for _, v := range sk {
					skipped = append(skipped, fmt.Sprint(v))
				}
			}
		}
		return procKB(proc.Process.Pid, "VmHWM") / 1024, took, skipped
	}
	cleanPeak, cleanTook, _ := run("clean", false)
	hostilePeak, hostileTook, skipped := run("hostile", true)
	fmt.Printf("\n=== hostile manifests: 12 x 4 MiB files under the target path ===\n")
	fmt.Printf("clean repository    peak RSS %d MB, webhook -> pushed %v\n", cleanPeak, cleanTook.Round(time.Millisecond))
	fmt.Printf("hostile repository  peak RSS %d MB, webhook -> pushed %v, %d files not read and named on the event\n", hostilePeak, hostileTook.Round(time.Millisecond), len(skipped))
	all := strings.Join(skipped, "\n")
	for name := range hostile {
		if !strings.Contains(all, "skipped apps/web/"+name+": ") {
			t.Errorf("%s is not named on the event:\n%s", name, all)
		}
	}
	if len(skipped) != len(hostile) {
		t.Errorf("%d files named, want the %d hostile ones:\n%s", len(skipped), len(hostile), all)
	}
	if hostilePeak >= 150 {
		t.Errorf("peak RSS %d MB with hostile files, want under 150 MB", hostilePeak)
	}
}

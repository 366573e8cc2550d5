package service

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/internal/manifesttest"
	"github.com/imagehook/imagehook/promote"
)

// benchSoak is the soak of the benchmark's staging: real time, so that the controller's own wake-up
// at the soak's end is what is measured.
const benchSoak = time.Second

// BenchmarkPromotion measures what pipelines cost: webhook → pushed for a pipeline's first stage
// beside a plain hook's (a waiting gate must add nothing), and a promotion's own latency from its
// gate opening (the soak ending) to the commit in the next stage — with the controller's wake-up at
// the gate's opening time, and, in the same run, without it (passes every 2s, as before timers).
// Each iteration is one push of each, and one promotion with each controller.
func BenchmarkPromotion(b *testing.B) {
	repo := manifesttest.Stages("dev", "staging")
	repo["apps/website/deployment.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: website, namespace: web}
spec:
  template:
    spec:
      containers:
        - name: website
          image: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0
`)}
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	extra := fmt.Sprintf(`pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {soak: %s}, targets: %s}`, target("dev"), benchSoak, target("staging"))
	start := func(opts promote.Options) *harness {
		return newHarnessRepoOpts(b, repo, "  - {id: site, token: ${HOOK_TOKEN}, source: dockerhub, pipeline: website}\n",
			func(o *Options) { o.Promote = opts }, extra)
	}
	timers := start(promote.Options{})
	passOnly := start(promote.Options{Interval: 2 * time.Second, NoGateTimers: true})
	// post pushes tag to hook and returns how long until pushed, and when the event finished (the
	// candidate's soak starts then).
	post := func(h *harness, hook, tag string) (time.Duration, time.Time) {
		body := []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"repo_name":"imagehook-demo/website"}}`)
		began := time.Now()
		code, resp := h.post("/hooks/"+hook+"?wait=30s&token="+hookToken, body)
		if code != http.StatusOK || resp["status"] != "succeeded" {
			b.Fatalf("push %s to %s: %d %v", tag, hook, code, resp)
		}
		took := time.Since(began)
		done, err := time.Parse(time.RFC3339Nano, fmt.Sprint(resp["updatedAt"]))
		if err != nil {
			b.Fatalf("push %s: updatedAt: %v", tag, err)
		}
		return took, done
	}
	// promoted waits for staging to run tag and returns how long after the soak ended it did.
	promoted := func(h *harness, tag string, soakFrom time.Time) time.Duration {
		opens := soakFrom.Add(benchSoak)
		for !strings.Contains(h.gitOut("show", "main:envs/staging/website/deployment.yaml"), "website:"+tag) {
			if time.Since(opens) > time.Minute {
				b.Fatalf("staging not promoted to %s", tag)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(opens)
	}
	var plain, entry, promotion, promotionPassOnly []time.Duration
	b.ResetTimer()
	for i := range b.N {
		tag := fmt.Sprintf("3.%d.0", i)
		took, _ := post(timers, "dockerhub", tag)
		plain = append(plain, took)
		took, done := post(timers, "site", tag)
		entry = append(entry, took)
		promotion = append(promotion, promoted(timers, tag, done))
		_, done = post(passOnly, "site", tag)
		promotionPassOnly = append(promotionPassOnly, promoted(passOnly, tag, done))
	}
	b.StopTimer()
	p50 := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2].Milliseconds())
	}
	b.ReportMetric(p50(plain), "plain-hook-pushed-p50-ms")
	b.ReportMetric(p50(entry), "pipeline-entry-pushed-p50-ms")
	b.ReportMetric(p50(promotion), "gate-open-to-pushed-p50-ms")
	b.ReportMetric(p50(promotionPassOnly), "gate-open-to-pushed-2s-pass-p50-ms")
}

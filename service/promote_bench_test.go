package service

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/internal/manifesttest"
	"github.com/imagehook/imagehook/promote"
)

// BenchmarkPromotion measures what pipelines cost: webhook → pushed for a pipeline's first stage
// beside a plain hook's (a waiting gate must add nothing), and a promotion's own latency from its
// gate opening (a soak ending, by a moved clock) to the commit in the next stage, with the
// controller's default pass interval. Each iteration is one push of each and one promotion.
func BenchmarkPromotion(b *testing.B) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
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
      - {name: staging, after: dev, gates: {soak: 1h}, targets: %s}`, target("dev"), target("staging"))
	h := newHarnessRepoOpts(b, repo, "  - {id: site, token: ${HOOK_TOKEN}, source: dockerhub, pipeline: website}\n",
		func(o *Options) { o.Promote = promote.Options{Now: clock} }, extra)
	post := func(hook, tag string) time.Duration {
		body := []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"repo_name":"imagehook-demo/website"}}`)
		began := time.Now()
		if code, resp := h.post("/hooks/"+hook+"?wait=30s&token="+hookToken, body); code != http.StatusOK || resp["status"] != "succeeded" {
			b.Fatalf("push %s to %s: %d %v", tag, hook, code, resp)
		}
		return time.Since(began)
	}
	var plain, entry, promotion []time.Duration
	b.ResetTimer()
	for i := range b.N {
		tag := fmt.Sprintf("3.%d.0", i)
		plain = append(plain, post("dockerhub", tag))
		entry = append(entry, post("site", tag))
		opened := time.Now()
		offset.Add(int64(2 * time.Hour))
		for !strings.Contains(h.gitOut("show", "main:envs/staging/website/deployment.yaml"), "website:"+tag) {
			if time.Since(opened) > time.Minute {
				b.Fatalf("staging not promoted to %s", tag)
			}
			time.Sleep(5 * time.Millisecond)
		}
		promotion = append(promotion, time.Since(opened))
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
}

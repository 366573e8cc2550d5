package manifests

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/manifesttest"
)

// TestCRDBundle: a 2.6 MB bundle of 3,000 CRDs with the target among them is read and rewritten,
// byte for byte except the image (golden: the original with only the image's bytes replaced), by
// workload through the index (serve's way) and by image on the plain tree (set-image's default;
// main's TestSetImageBigFiles runs set-image --workload on it).
func TestCRDBundle(t *testing.T) {
	bundle := manifesttest.CRDBundle(manifesttest.BundleDeploy)
	if len(bundle) < 2_600_000 {
		t.Fatalf("bundle is %d bytes, want 2.6 MB", len(bundle))
	}
	want := strings.Replace(bundle, `"registry.example.com/acme/web:1.0.0"`, `"registry.example.com/acme/web:1.1.0"`, 1)
	m := fstest.MapFS{
		"vendor/argo/install.yaml": {Data: []byte(bundle)},
		"apps/api.yaml":            {Data: []byte(deploymentDoc("api", "acme/api:1.0"))},
	}
	line := strings.Count(bundle[:strings.Index(bundle, "registry.example.com/acme/web:1.0.0")], "\n") + 1
	var reads atomic.Int64
	for _, tt := range []struct {
		name   string
		opts   Options
		target Selector
	}{
		{"workload with the index", Options{Index: OpenIndex("", Budget{})}, Selector{"Deployment", "web", "team", "app"}},
		{"every reference", Options{}, Selector{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fsys fs.FS = m
			if tt.opts.Index != nil {
				fsys = hashedFS{m, &reads}
			}
			res, err := RewriteSelected(fsys, ".", tt.target, mustRef(t, "registry.example.com/acme/web:1.1.0"), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.NotRead) > 0 || len(res.Warnings) > 0 {
				t.Errorf("not read: %v", res.NotRead)
			}
			if len(res.Changes) != 1 || res.Changes[0].Line != line {
				t.Errorf("changes = %+v, want one at line %d", res.Changes, line)
			}
			got := string(res.Files["vendor/argo/install.yaml"])
			if got != want {
				t.Errorf("rewrite differs from the original beyond the image (%d bytes, want %d)", len(got), len(want))
			}
		})
	}
}

// TestHostileFilesBesideTheTarget: twelve hostile files that name the workload, beside the real
// one: the real target lands, each hostile file is named with its typed reason, none is changed —
// on a directory and through the index. The files are 256 KiB against budgets scaled down alike,
// so that the race detector's suite stays quick; BenchmarkHostileFiles and loadtest's
// TestHostileManifests run them at 4 MiB against the defaults.
func TestHostileFilesBesideTheTarget(t *testing.T) {
	hostile := manifesttest.HostileFiles(256<<10, manifesttest.BundleDeploy)
	limits := Budget{MaxDocumentNodes: 10_000, MaxNodes: 5_000}
	m := fstest.MapFS{"apps/web/deploy.yaml": {Data: []byte(manifesttest.BundleDeploy)}}
	for name, data := range hostile {
		m["apps/web/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	var reads atomic.Int64
	for _, withIndex := range []bool{false, true} {
		t.Run(fmt.Sprintf("index=%v", withIndex), func(t *testing.T) {
			budget := limits
			opts := Options{Budget: &budget}
			var fsys fs.FS = m
			if withIndex {
				fsys, opts.Index = hashedFS{m, &reads}, OpenIndex("", limits)
			}
			start := time.Now()
			res, err := RewriteSelected(fsys, "apps/web", Selector{"Deployment", "web", "team", "app"}, mustRef(t, "registry.example.com/acme/web:1.1.0"), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("took %v", time.Since(start))
			if len(res.Files) != 1 || !strings.Contains(string(res.Files["apps/web/deploy.yaml"]), `"registry.example.com/acme/web:1.1.0" # pinned by CI`) {
				t.Fatalf("files = %v, want the real target rewritten", keys(res.Files))
			}
			var named []string
			for _, n := range res.NotRead {
				named = append(named, strings.TrimPrefix(n.File, "apps/web/"))
				want := event.ReasonDocumentTooBig
				if strings.Contains(n.File, "copies") {
					want = event.ReasonEventBudget
				}
				if n.Reason != want {
					t.Errorf("%s: reason %q (%s), want %q", n.File, n.Reason, n.Detail, want)
				}
			}
			var all []string
			for name := range hostile {
				all = append(all, name)
			}
			sort.Strings(all)
			if strings.Join(named, " ") != strings.Join(all, " ") {
				t.Errorf("named %v\nwant   %v", named, all)
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BenchmarkHostileFiles reports the peak heap of one lookup beside the twelve hostile 4 MiB files
// (peak-heap-MB, sampled while it runs; the budget is 150 MB for the whole process, which
// loadtest's TestHostileManifests measures as peak RSS). Run it with
// go test -run '^$' -bench BenchmarkHostileFiles -benchtime 3x ./manifests.
func BenchmarkHostileFiles(b *testing.B) {
	dir := b.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("deploy.yaml", manifesttest.BundleDeploy)
	for name, data := range manifesttest.HostileFiles(4<<20, manifesttest.BundleDeploy) {
		write(name, data)
	}
	fsys := os.DirFS(dir)
	pushed := mustRef(b, "registry.example.com/acme/web:1.1.0")
	runtime.GC()
	peak := samplePeakHeap()
	b.ResetTimer()
	for b.Loop() {
		res, err := RewriteSelected(fsys, ".", Selector{"Deployment", "web", "team", "app"}, pushed, Options{Budget: &Budget{}})
		if err != nil || len(res.Files) != 1 || len(res.NotRead) != 12 {
			b.Fatalf("%v: %d files, %d not read", err, len(res.Files), len(res.NotRead))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MB")
}

// samplePeakHeap samples the heap every millisecond until the returned function is called, which
// gives the highest value seen (runtime/metrics: no stop-the-world, unlike ReadMemStats).
func samplePeakHeap() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}

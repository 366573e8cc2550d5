package gitops

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagehook/imagehook/gitops/gitopsconfig"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/manifests"
)

var (
	firstFetchFiles   = flag.Int("firstfetch-files", 50000, "files in BenchmarkFirstStart's repository")
	firstFetchProfile = flag.String("firstfetch-heapprofile", "", "write a heap profile at the heap's peak to this file")
)

// BenchmarkFirstStart measures what a first start on a big repository costs in memory: the first
// fetch into an empty cache, then the first event, which builds the manifests index by reading every
// file of the tip. It reports the peak RSS (VmHWM, reset before each phase) and the peak live heap of
// each phase. go test -run '^$' -bench FirstStart -benchtime 1x ./gitops -firstfetch-files 200000
func BenchmarkFirstStart(b *testing.B) {
	srv := gitserver.New(b, "bot", "pw")
	bare := srv.Root + "/apps.git"
	gitserver.Git(b, srv.Root, "init", "-q", "--bare", "-b", "main", bare)
	gitserver.Git(b, bare, "config", "http.receivepack", "true")
	generateBig(b, bare, *firstFetchFiles)
	url := srv.URL + "/apps.git"
	for range b.N {
		r, err := Open(Config{Repo: gitopsconfig.Repo{Name: "apps", URL: url, Branch: "main", Auth: Auth{Username: "bot", Password: "pw"},
			Author: Signature{Name: "imagehook", Email: "imagehook@example.com"}}}, filepath.Join(b.TempDir(), "cache"), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		m := startPeaks(*firstFetchProfile)
		if err := r.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
		fetchRSS, fetchHeap := m.phase()
		ix := manifests.OpenIndex("", manifests.Budget{})
		target, _ := manifests.WorkloadTarget("deployment/app-001", "", "app")
		pushed, _ := imageref.Parse("registry.example.com/acme/app-001:2.0.0")
		_, err = r.CommitAndPush(context.Background(), func(fsys fs.FS) (map[string][]byte, string, error) {
			over := manifests.NewOverlay(fsys)
			if _, err := manifests.RewriteSelected(over, ".", target, pushed, manifests.Options{Index: ix}); err != nil {
				return nil, "", err
			}
			return over.Files(), "bump\n", nil
		})
		if err != nil {
			b.Fatal(err)
		}
		indexRSS, indexHeap := m.phase()
		m.stop()
		files, _ := ix.Len()
		b.ReportMetric(float64(fetchRSS)/1024, "fetch-peak-RSS-MB")
		b.ReportMetric(float64(fetchHeap)/(1<<20), "fetch-peak-heap-MB")
		b.ReportMetric(float64(indexRSS)/1024, "index-peak-RSS-MB")
		b.ReportMetric(float64(indexHeap)/(1<<20), "index-peak-heap-MB")
		b.ReportMetric(float64(files), "files-indexed")
	}
}

// generateBig writes a one-commit repository of files ConfigMaps and 500 Deployments, as
// loadtest's monorepo (streamed into git fast-import, so that the benchmark's own heap stays small).
func generateBig(b *testing.B, bare string, files int) {
	cmd := gitserver.Command(bare, "fast-import", "--quiet")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(in)
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	app := func(i int) string { return fmt.Sprintf("teams/team-%02d/app-%03d", i%100, i) }
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter gen <gen@example.com> %d +0000\n", time.Now().Unix())
	data("generated")
	for i := range 500 {
		fmt.Fprintf(w, "M 100644 inline %s/deployment.yaml\n", app(i))
		data(fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%03d\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/app-%03d:1.0.0\n", i, i))
	}
	for i := range files - 500 {
		fmt.Fprintf(w, "M 100644 inline %s/config/settings-%06d.yaml\n", app(i%500), i)
		data(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-%06d\ndata:\n  revision: \"%d\"\n", i, i))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	gitserver.Git(b, bare, "gc", "-q")
}

// peaks samples the live heap while a phase runs and reads the process's peak RSS at its end.
type peaks struct {
	mu      sync.Mutex
	heap    uint64
	top     uint64
	profile string
	done    chan struct{}
	wg      sync.WaitGroup
}

func startPeaks(profile string) *peaks {
	p := &peaks{profile: profile, done: make(chan struct{})}
	resetHWM()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			select {
			case <-p.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			metrics.Read(s)
			v := s[0].Value.Uint64()
			p.mu.Lock()
			if v > p.heap {
				p.heap = v
			}
			grow := v > p.top+8<<20
			if grow {
				p.top = v
			}
			profile := p.profile
			p.mu.Unlock()
			if grow && profile != "" {
				if f, err := os.Create(profile); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return p
}

// phase returns the peak RSS (kB) and live heap (bytes) since the last phase and resets both.
func (p *peaks) phase() (rssKB int, heap uint64) {
	rssKB = hwmKB()
	p.mu.Lock()
	heap, p.heap = p.heap, 0
	p.top = 0
	if p.profile != "" {
		p.profile += ".next"
	}
	p.mu.Unlock()
	resetHWM()
	return rssKB, heap
}

func (p *peaks) stop() { close(p.done); p.wg.Wait() }

// resetHWM resets the process's peak RSS (Linux: 5 written to clear_refs).
func resetHWM() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0o200) }

func hwmKB() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

package oci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/registrytest"
)

// counted puts a proxy in front of a real registry that counts what reaches it.
func counted(t *testing.T, reg *registrytest.Registry) (string, *atomic.Int64) {
	t.Helper()
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return strings.TrimPrefix(front.URL, "http://"), &n
}

// TestOnlyConfiguredRegistriesAreAsked runs a real distribution registry behind a counting proxy: a
// client configured for another host refuses to resolve, list or check a signature there, with the
// typed reason and the host named, and not one request reaches the registry; configured, the same
// calls are answered.
func TestOnlyConfiguredRegistriesAreAsked(t *testing.T) {
	reg := registrytest.Start(t, nil)
	host, asked := counted(t, reg)
	reg.Push(t, "team/app", "1.0.0")
	reg.Push(t, "team/app", "1.1.0")
	ctx := context.Background()
	other := New([]Host{{Host: "registry.example.com", Username: registrytest.User, Password: registrytest.Password}}, nil, slog.New(slog.DiscardHandler))
	key := &CosignKey{}
	for name, call := range map[string]func() error{
		"resolve": func() error { _, err := other.Resolve(ctx, host+"/team/app:1.0.0", ""); return err },
		"tags":    func() error { _, err := other.Tags(ctx, host+"/team/app"); return err },
		"signature": func() error {
			return other.VerifySignature(ctx, host+"/team/app:1.0.0", "sha256:"+strings.Repeat("0", 64), key)
		},
	} {
		err := call()
		if !errors.Is(err, ErrNotConfigured) || event.ReasonOf(err) != event.ReasonNotConfiguredRegistry || !strings.Contains(fmt.Sprint(err), host) {
			t.Errorf("%s on an unlisted host: %v (reason %q), want %q naming %s", name, err, event.ReasonOf(err), event.ReasonNotConfiguredRegistry, host)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("%d requests reached a registry config does not list", n)
	}
	listed := New([]Host{{Host: host, Username: registrytest.User, Password: registrytest.Password, Insecure: true}}, nil, slog.New(slog.DiscardHandler))
	if _, err := listed.Resolve(ctx, host+"/team/app:1.0.0", ""); err != nil {
		t.Errorf("resolve on a listed host: %v", err)
	}
	tags, err := listed.Tags(ctx, host+"/team/app")
	if err != nil || strings.Join(tags, ",") != "1.0.0,1.1.0" {
		t.Errorf("tags on a listed host = %q, %v", tags, err)
	}
	if asked.Load() == 0 {
		t.Error("the listed registry was never asked")
	}
}

// tagServer is a registry's tag-list endpoint listing count tags, written as they are produced so
// that the server holds none of them. The distribution registry cannot be made to hold 3 million
// tags in a test's time (each is a manifest write), so this small server stands in for it; the
// endpoint is the distribution spec's (GET /v2/<name>/tags/list, ?n= and ?last=, Link rel="next").
// With paged false it ignores n and sends every tag in one answer, as a hostile registry may.
func tagServer(t testing.TB, count int, paged bool) (string, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			http.NotFound(w, r)
			return
		}
		from, end := 0, count
		if last := r.URL.Query().Get("last"); last != "" {
			n, _ := strconv.Atoi(strings.TrimPrefix(last, "1.0."))
			from = n + 1
		}
		if n, _ := strconv.Atoi(r.URL.Query().Get("n")); paged && n > 0 {
			end = min(count, from+n)
			if end < count {
				w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=1.0.%d>; rel="next"`, r.URL.Path, n, end-1))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		bw := bufio.NewWriterSize(w, 64<<10)
		buf := []byte(`{"name":"big/app","tags":[`)
		for i := from; i < end; i++ {
			if i > from {
				buf = append(buf, ',')
			}
			buf = append(buf, `"1.0.`...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, '"')
			if _, err := bw.Write(buf); err != nil {
				return // the client stopped reading
			}
			served.Add(1)
			buf = buf[:0]
		}
		_, _ = bw.WriteString("]}")
		_ = bw.Flush()
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &served
}

// TestTagListOf3MillionTagsIsCapped: a registry listing 3 million tags, page by page or all in one
// answer, fails the listing with the typed reason once the count or byte cap is passed, having read
// no more than the cap, and allocating far less than 100 MB (the run went from 35 to 471 MB
// RSS); a list within the caps is read whole.
func TestTagListOf3MillionTagsIsCapped(t *testing.T) {
	for _, tt := range []struct {
		name  string
		paged bool
		want  string
	}{
		{"paged", true, "more than 100000 tags"},
		{"one answer", false, fmt.Sprintf("more than %d bytes", DefaultMaxTagBytes)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host, served := tagServer(t, 3_000_000, tt.paged)
			c := New([]Host{{Host: host, Insecure: true}}, nil, slog.New(slog.DiscardHandler))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tags, err := c.Tags(context.Background(), host+"/big/app")
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTagListTooLong) || event.ReasonOf(err) != event.ReasonTagListTooLong || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Fatalf("3 million tags: %d tags, %v (reason %q), want %q", len(tags), err, event.ReasonOf(err), tt.want)
			}
			if n := served.Load(); n > 1_100_000 {
				t.Errorf("%d tags were served before the listing stopped", n)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
				t.Errorf("listing allocated %d MB, want under 100", alloc>>20)
			}
		})
	}
	host, _ := tagServer(t, 2500, true)
	tags, err := New([]Host{{Host: host, Insecure: true}}, nil, slog.New(slog.DiscardHandler)).Tags(context.Background(), host+"/big/app")
	if err != nil || len(tags) != 2500 || tags[2499] != "1.0.2499" {
		t.Errorf("2500 tags in three pages: %d, %v", len(tags), err)
	}
	host, _ = tagServer(t, 11, true)
	if _, err := New([]Host{{Host: host, Insecure: true, MaxTags: 10}}, nil, slog.New(slog.DiscardHandler)).Tags(context.Background(), host+"/big/app"); !errors.Is(err, ErrTagListTooLong) {
		t.Errorf("11 tags with maxTags 10: %v", err)
	}
}

// peakRSS returns the process's peak resident set in bytes since the last resetPeakRSS (Linux).
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

// resetPeakRSS starts a new peak (clear_refs 5 resets VmHWM; Linux 4.0 and later).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkTagListOf3MillionTags reports the peak RSS (the whole process, server included) and the
// allocations of a listing against a registry of 3 million tags, paged and in one answer; both must
// stay under 100 MB.
func BenchmarkTagListOf3MillionTags(b *testing.B) {
	for _, paged := range []bool{true, false} {
		b.Run(fmt.Sprintf("paged=%v", paged), func(b *testing.B) {
			host, _ := tagServer(b, 3_000_000, paged)
			c := New([]Host{{Host: host, Insecure: true}}, nil, slog.New(slog.DiscardHandler))
			runtime.GC()
			resetPeakRSS()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Tags(context.Background(), host+"/big/app"); !errors.Is(err, ErrTagListTooLong) {
					b.Fatalf("3 million tags: %v", err)
				}
			}
			peak := peakRSS()
			b.ReportMetric(peak/(1<<20), "peak-RSS-MB")
			if peak > 100<<20 {
				b.Errorf("peak RSS %.0f MB, want under 100", peak/(1<<20))
			}
		})
	}
}

package updater

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/registrytest"
	"github.com/imagehook/imagehook/oci"
)

// slowRegistry is a real registry (internal/registrytest) behind a proxy that holds every request
// for the slow repository until released — a registry that takes 45 s, or more, to answer about
// one image — and passes the others straight through.
type slowRegistry struct {
	host    string
	mu      sync.Mutex
	holding int
	gate    chan struct{}
}

func newSlowRegistry(t *testing.T, reg *registrytest.Registry) *slowRegistry {
	t.Helper()
	s := &slowRegistry{gate: make(chan struct{})}
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/slow/") {
			s.mu.Lock()
			s.holding++
			s.mu.Unlock()
			select {
			case <-s.gate:
			case <-r.Context().Done():
			}
			s.mu.Lock()
			s.holding--
			s.mu.Unlock()
			if r.Context().Err() != nil {
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(s.release)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *slowRegistry) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.gate:
	default:
		close(s.gate)
	}
}

func (s *slowRegistry) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding
}

// TestSlowRegistryDelaysNoOtherEvent: while the registry takes its time over one hook's push
// (verify: registry), another hook's event for the same repository is pushed at its normal pace;
// once the registry answers, the slow push is written with the registry's digest. With a verify
// timeout shorter than the registry's silence, the slow push is asked again and, past its attempt
// budget, fails through the finisher — never holding up the other.
func TestSlowRegistryDelaysNoOtherEvent(t *testing.T) {
	reg := registrytest.Start(t, nil)
	digest := reg.Push(t, "slow", "2")
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		answers bool
		want    event.Status
	}{
		{"answers late", 0, true, event.Succeeded},
		{"never within the timeout", 200 * time.Millisecond, false, event.Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			slow := newSlowRegistry(t, reg)
			client := oci.New([]oci.Host{{Host: slow.host, Username: registrytest.User, Password: registrytest.Password, Insecure: true}}, nil, slog.New(slog.DiscardHandler))
			rg := newReportRig(t, fstest.MapFS{"a.yaml": deployment("a", slow.host+"/slow:1"), "b.yaml": deployment("b", "acme/b:1")}, nil,
				Options{Resolver: client, VerifyTimeout: tt.timeout, MaxAttempts: 3})
			rg.run()
			verified := named(ev("v", "a", slow.host+"/slow:2", ""), "checked")
			verified.Verify = true
			if err := rg.u.Submit(context.Background(), verified); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); slow.held() == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the registry was never asked")
				}
			}
			other := named(ev("o", "b", "acme/b:2", ""), "other")
			if err := rg.u.Submit(context.Background(), other); err != nil {
				t.Fatal(err)
			}
			if got := rg.final("o"); got.Status != event.Succeeded {
				t.Fatalf("the other hook's event: %s %+v", got.Status, got.Steps)
			}
			if tt.answers {
				if e, _ := rg.j.Get(context.Background(), "v"); e.Status.Done() || slow.held() == 0 {
					t.Fatalf("the slow push finished (%s) or the registry stopped holding (%d) before the other event was pushed", e.Status, slow.held())
				}
				slow.release()
			}
			got := rg.final("v")
			if got.Status != tt.want {
				t.Fatalf("slow push: %s, want %s; error %q, steps %+v", got.Status, tt.want, got.Error, got.Steps)
			}
			st, _ := got.Step(event.StepGit)
			switch {
			case tt.answers && (got.Push.Digest != digest || len(st.Files) != 1):
				t.Errorf("digest %q (want the registry's %q), git step %+v", got.Push.Digest, digest, st)
			case !tt.answers && (got.Error != "gave up after 3 attempts" || rg.applier.calls != 0):
				t.Errorf("error %q, %d applies", got.Error, rg.applier.calls)
			}
		})
	}
}

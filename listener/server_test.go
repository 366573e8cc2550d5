package listener

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
)

// recorder is the updater seam: it records submissions (the real flow is tested in service).
type recorder struct {
	mu     sync.Mutex
	events []*event.Event
}

func (r *recorder) Submit(_ context.Context, ev *event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}
func (r *recorder) Get(context.Context, string) (*event.Event, error) { return nil, event.ErrNotFound }
func (r *recorder) Recent(context.Context, int) ([]*event.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...), nil
}
func (r *recorder) Wait(_ context.Context, id string) (*event.Event, error) {
	return &event.Event{ID: id, Status: event.Queued}, nil
}

const (
	secret  = "s3cr3t-token-value"
	secret2 = "rotated-token-value"
)

func newServer(t *testing.T, logs io.Writer, hooks ...config.Hook) (*httptest.Server, *recorder) {
	t.Helper()
	for i := range hooks {
		if hooks[i].Token == "" && hooks[i].Tokens == nil {
			hooks[i].Token = secret
			hooks[i].Tokens = []string{secret2}
		}
		if hooks[i].Targets == nil {
			hooks[i].Targets = []config.Target{{Repo: "apps", Workload: "deployment/web", Namespace: "web", Container: "web"}}
		}
	}
	cfg := &config.Config{MaxBodyBytes: 1 << 20, Hooks: hooks, Limits: config.Limits{HookRate: 1000, HookBurst: 1000, GlobalRate: 1000, GlobalBurst: 1000, AuthFailureRate: 1000, AuthFailureBurst: 1000, MaxEventsPerRequest: 50}}
	rec := &recorder{}
	s, err := New(cfg, Deps{Updater: rec, Events: rec, Metrics: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, rec
}

func sign(h func() hash.Hash, key string, body []byte) string {
	m := hmac.New(h, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func post(t *testing.T, url string, body []byte, header map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m, resp.Header
}

// TestSignatures has a passing and a failing case for every signing scheme.
func TestSignatures(t *testing.T) {
	var logs bytes.Buffer
	ghcr := readPayload(t, "ghcr/ghcr-package-event.theryangeary-homelab-test.json")
	gitea := readPayload(t, "gitea/gitea-package.DERIVED-from-gitea-test-fixture.json")
	nexus := readPayload(t, "nexus/nexus.flux-recv-fixture.json")
	srv, rec := newServer(t, &logs,
		config.Hook{ID: "ghcr", Source: "ghcr"},
		config.Hook{ID: "gitea", Source: "gitea"},
		config.Hook{ID: "nexus", Source: "nexus", RegistryHost: "nexus.example.com"},
		config.Hook{ID: "custom-sig", Source: "dockerhub", Signature: &config.Signature{Header: "X-Signature", Algorithm: "sha256", Prefix: "sha256="}},
		config.Hook{ID: "auto", Source: "auto", RegistryHost: "nexus.example.com"},
	)
	dh := readPayload(t, "dockerhub/dockerhub.keel-fixture.json")
	tests := []struct {
		name   string
		hook   string
		body   []byte
		header map[string]string
		code   int
	}{
		{"github valid", "ghcr", ghcr, map[string]string{"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + sign(sha256.New, secret, ghcr)}, 202},
		{"github rotated key", "ghcr", ghcr, map[string]string{"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + sign(sha256.New, secret2, ghcr)}, 202},
		{"github wrong key", "ghcr", ghcr, map[string]string{"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + sign(sha256.New, "nope", ghcr)}, 401},
		{"github token only", "ghcr?token=" + secret, ghcr, map[string]string{"X-GitHub-Event": "package"}, 401},
		{"github ping signed", "ghcr", []byte(`{"zen":"x"}`), map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(sha256.New, secret, []byte(`{"zen":"x"}`))}, 200},
		{"gitea valid", "gitea", gitea, map[string]string{"X-Gitea-Event": "package", "X-Gitea-Signature": sign(sha256.New, secret, gitea)}, 202},
		{"forgejo valid", "gitea", gitea, map[string]string{"X-Forgejo-Event": "package", "X-Forgejo-Signature": sign(sha256.New, secret, gitea)}, 202},
		{"gitea tampered", "gitea", append(bytes.Clone(gitea), ' '), map[string]string{"X-Gitea-Signature": sign(sha256.New, secret, gitea)}, 401},
		{"nexus valid", "nexus", nexus, map[string]string{"X-Nexus-Webhook-Signature": sign(sha1.New, secret, nexus)}, 202},
		{"nexus missing", "nexus", nexus, nil, 401},
		{"custom header valid", "custom-sig", dh, map[string]string{"X-Signature": "sha256=" + sign(sha256.New, secret, dh)}, 202},
		{"custom header wrong", "custom-sig", dh, map[string]string{"X-Signature": "sha256=00"}, 401},
		{"auto signed nexus", "auto", nexus, map[string]string{"X-Nexus-Webhook-Signature": sign(sha1.New, secret, nexus)}, 202},
		{"auto unsigned nexus", "auto?token=" + secret, nexus, map[string]string{"X-Nexus-Webhook-Id": "x"}, 401},
		{"auto dockerhub token", "auto?token=" + secret, dh, nil, 202},
		{"auto dockerhub no token", "auto", dh, nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := post(t, srv.URL+"/hooks/"+tt.hook, tt.body, tt.header)
			if code != tt.code {
				t.Errorf("status %d %v, want %d", code, body, tt.code)
			}
			if strings.Contains(fmtJSON(body), secret) || strings.Contains(fmtJSON(body), secret2) {
				t.Errorf("response leaks the secret: %v", body)
			}
		})
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), secret2) {
		t.Errorf("the log contains a secret:\n%s", logs.String())
	}
	if len(rec.events) != 8 {
		t.Errorf("%d events recorded, want 8", len(rec.events))
	}
}

func fmtJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

func TestLimitsPolicyAndAddresses(t *testing.T) {
	var logs bytes.Buffer
	body := []byte(`{"push_data":{"tag":"1.2.3"},"repository":{"repo_name":"acme/web"}}`)
	srv, rec := newServer(t, &logs,
		config.Hook{ID: "semver", Source: "dockerhub", Tags: "semver:>=2.0.0"},
		config.Hook{ID: "local-only", Source: "dockerhub", AllowedCIDRs: []string{"10.0.0.0/8"}},
		config.Hook{ID: "old-status", Source: "dockerhub", MismatchStatus: 500},
	)
	code, resp, _ := post(t, srv.URL+"/hooks/semver?token="+secret, body, nil)
	if code != 200 || resp["status"] != "ignored" || !strings.Contains(fmtJSON(resp), "does not satisfy") {
		t.Errorf("policy: %d %v", code, resp)
	}
	if code, _, _ := post(t, srv.URL+"/hooks/local-only?token="+secret, body, nil); code != 403 {
		t.Errorf("address: %d", code)
	}
	if code, _, _ := post(t, srv.URL+"/hooks/old-status?token=wrong", body, nil); code != 500 {
		t.Errorf("old mismatch status: %d", code)
	}
	if code, _, _ := post(t, srv.URL+"/hooks/old-status?token="+secret+"&ns=other", body, nil); code != 500 {
		t.Errorf("old mismatch status for targets: %d", code)
	}
	deep := []byte(`{"push_data":{"tag":"1"},"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	if code, _, _ := post(t, srv.URL+"/hooks/old-status?token="+secret, deep, nil); code != 400 {
		t.Errorf("deep json: %d", code)
	}
	if len(rec.events) != 0 {
		t.Errorf("events recorded: %d", len(rec.events))
	}
}

func TestRateLimit(t *testing.T) {
	cfg := &config.Config{MaxBodyBytes: 1 << 20, Limits: config.Limits{HookRate: 1, HookBurst: 2, GlobalRate: 1000, GlobalBurst: 1000, AuthFailureRate: 1000, AuthFailureBurst: 1000},
		Hooks: []config.Hook{{ID: "h", Token: secret, Source: "dockerhub", Targets: []config.Target{{Repo: "r", Workload: "deployment/w"}}}}}
	s, err := New(cfg, Deps{Updater: &recorder{}, Events: &recorder{}, Metrics: prometheus.NewRegistry()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	body := []byte(`{"push_data":{"tag":"1"},"repository":{"repo_name":"a/b"}}`)
	var codes []int
	var retry string
	for range 3 {
		code, _, h := post(t, srv.URL+"/hooks/h?token="+secret, body, nil)
		codes = append(codes, code)
		retry = h.Get("Retry-After")
	}
	if codes[0] != 202 || codes[1] != 202 || codes[2] != 429 || retry == "" {
		t.Errorf("codes %v, Retry-After %q", codes, retry)
	}
}

// readPayload reads a captured delivery from package registry's samples.
func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "registry", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPollOnlyHookServesNoURL: a hook that only polls (reconcile:, no token) has no webhook URL:
// POST /hooks/{id} answers 404 as for an unknown hook, with or without a token offered.
func TestPollOnlyHookServesNoURL(t *testing.T) {
	var logs bytes.Buffer
	srv, rec := newServer(t, &logs, config.Hook{ID: "polled", Tokens: []string{}, Reconcile: &config.Reconcile{Interval: config.Duration(60e9)},
		Targets: []config.Target{{Repo: "apps", Path: "apps", Marker: "web"}}})
	for _, q := range []string{"", "?token=", "?token=" + secret} {
		code, body, _ := post(t, srv.URL+"/hooks/polled"+q, []byte(`{"push_data":{"tag":"1.0"}}`), nil)
		if code != 404 || body["error"] != "unknown hook" {
			t.Errorf("POST /hooks/polled%s: %d %v, want 404 unknown hook", q, code, body)
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("%d events accepted", len(rec.events))
	}
}

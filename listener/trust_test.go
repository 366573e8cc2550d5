package listener

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/internal/testlog"
)

// Row 1 of the trust issue: a blank rotation token must never be a credential — not as an HMAC key,
// not as a Bearer value that trims to nothing.
func TestNoBlankCredential(t *testing.T) {
	var logs bytes.Buffer
	ghcr := readPayload(t, "ghcr/ghcr-package-event.theryangeary-homelab-test.json")
	harbor := readPayload(t, "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json")
	// Config refuses blank tokens (config.TestBlankSecretsRefused); these hooks are built by hand
	// to prove the listener never uses one even if it got through.
	srv, rec := newServer(t, &logs,
		config.Hook{ID: "ghcr", Source: "ghcr", Tokens: []string{secret, ""}},
		config.Hook{ID: "harbor", Source: "harbor", Tokens: []string{secret, " \u00a0"}},
	)
	for _, tt := range []struct {
		name, hook string
		body       []byte
		header     map[string]string
		want       int
	}{
		{"HMAC keyed with empty", "ghcr", ghcr, map[string]string{"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + sign(sha256.New, "", ghcr)}, 401},
		{"Bearer NBSP", "harbor", harbor, map[string]string{"Authorization": "Bearer \u00a0"}, 401},
		{"bare NBSP and ideographic space", "harbor", harbor, map[string]string{"Authorization": "\u00a0\u3000"}, 401},
		{"empty token parameter", "harbor?token=%C2%A0", harbor, nil, 401},
		{"genuine still works", "harbor", harbor, map[string]string{"Authorization": secret}, 202},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, body, _ := post(t, srv.URL+"/hooks/"+tt.hook, tt.body, tt.header); code != tt.want {
				t.Errorf("got %d %v, want %d", code, body, tt.want)
			}
		})
	}
	if len(rec.events) != 1 {
		t.Errorf("%d events recorded, want only the genuine one", len(rec.events))
	}
}

// Row 9: a query string never turns "signature required" into "a token is enough".
func TestRepoTypeNeverDropsSignature(t *testing.T) {
	srv, rec := newServer(t, io.Discard,
		config.Hook{ID: "ghcr", Source: "ghcr"}, config.Hook{ID: "gitea", Source: "gitea"}, config.Hook{ID: "nexus", Source: "nexus"})
	custom := []byte(`{"push_data":{"tag":"1.0"},"repository":{"repo_url":"r.example.com","name":"web","namespace":"acme"}}`)
	for _, hook := range []string{"ghcr", "gitea", "nexus"} {
		for _, rt := range []string{"custom", "aliyun", "dockerhub", "harbor"} {
			code, body, _ := post(t, srv.URL+"/hooks/"+hook+"?repo_type="+rt+"&token="+secret, custom, map[string]string{"Authorization": "Bearer " + secret})
			if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), "signed") {
				t.Errorf("%s with repo_type=%s: got %d %v, want 400 signed deliveries only", hook, rt, code, body)
			}
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("%d events recorded", len(rec.events))
	}
}

// Row 8: the old tool's trigger rules keep adnanh/webhook 2.8's meaning. Each case is a hooks.json
// trigger-rule and requests with what webhook 2.8 answered them (its hook.go: "and" needs every
// rule; value is an exact comparison; payload-hmac-* keys the HMAC with the rule's own secret and
// takes the header with or without the "sha256=" prefix, or a comma-separated list of prefixed
// signatures; ip-whitelist takes space-separated ranges, a bare address meaning /32).
func TestOldRulesKeepTheirMeaning(t *testing.T) {
	body := []byte(`{"push_data":{"tag":"2.0"},"repository":{"repo_url":"r.example.com","name":"web","namespace":"acme"}}`)
	const S, T = "hmac-secret-S", "url-token-T"
	wl := `{"match":{"type":"value","value":"deployment/web","parameter":{"source":"url","name":"workload"}}}`
	hmacRule := `{"match":{"type":"payload-hmac-sha256","secret":"` + S + `","parameter":{"source":"header","name":"X-Hub-Signature-256"}}}`
	tokenRule := `{"match":{"type":"value","value":"` + T + `","parameter":{"source":"url","name":"token"}}}`
	sigS, sigT := sign(sha256.New, S, body), sign(sha256.New, T, body)
	type req struct {
		name   string
		query  string
		header map[string]string
		want   int
	}
	for _, tt := range []struct {
		name string
		rule string
		reqs []req
	}{
		{"url token", `{"and":[` + tokenRule + `,` + wl + `]}`, []req{
			{"right token", "token=" + T, nil, 202},
			{"wrong token", "token=x", nil, 401},
			{"no token", "", nil, 401},
		}},
		{"Authorization header value", `{"and":[{"match":{"type":"value","value":"` + T + `","parameter":{"source":"header","name":"Authorization"}}},` + wl + `]}`, []req{
			{"header", "", map[string]string{"Authorization": T}, 202},
			{"wrong header", "", map[string]string{"Authorization": "x"}, 401},
		}},
		{"hmac alone", `{"and":[` + hmacRule + `,` + wl + `]}`, []req{
			{"prefixed", "", map[string]string{"X-Hub-Signature-256": "sha256=" + sigS}, 202},
			{"bare hex", "", map[string]string{"X-Hub-Signature-256": sigS}, 202},
			{"comma list", "", map[string]string{"X-Hub-Signature-256": "sha1=00,sha256=" + sigS}, 202},
			{"keyed with another secret", "", map[string]string{"X-Hub-Signature-256": "sha256=" + sigT}, 401},
			{"unsigned", "", nil, 401},
		}},
		{"hmac and url token", `{"and":[` + hmacRule + `,` + tokenRule + `,` + wl + `]}`, []req{
			{"both right", "token=" + T, map[string]string{"X-Hub-Signature-256": "sha256=" + sigS}, 202},
			{"signature without token", "", map[string]string{"X-Hub-Signature-256": "sha256=" + sigS}, 401},
			{"token signs", "token=" + T, map[string]string{"X-Hub-Signature-256": "sha256=" + sigT}, 401},
			{"token without signature", "token=" + T, nil, 401},
		}},
		{"ip-whitelist ranges", `{"and":[` + tokenRule + `,{"match":{"type":"ip-whitelist","ip-range":"10.0.0.0/8 127.0.0.1"}},` + wl + `]}`, []req{
			{"listed address", "token=" + T, nil, 202},
		}},
		{"ip-whitelist elsewhere", `{"and":[` + tokenRule + `,{"match":{"type":"ip-whitelist","ip-range":"10.0.0.0/8"}},` + wl + `]}`, []req{
			{"unlisted address", "token=" + T, nil, 403},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "hooks.json"), []byte(`[{"id":"old","trigger-rule":`+tt.rule+`}]`), 0o644); err != nil {
				t.Fatal(err)
			}
			hooks, err := config.LoadHooksDir(dir, "in-cluster", false)
			if err != nil {
				t.Fatal(err)
			}
			for i := range hooks {
				if hooks[i].Token == "" {
					hooks[i].Tokens = []string{} // keep newServer from adding tokens: the rule has none
				}
			}
			srv, _ := newServer(t, io.Discard, hooks...)
			for _, r := range tt.reqs {
				code, resp, _ := post(t, srv.URL+"/hooks/old?repo_type=custom&workload=deployment/web&"+r.query, body, r.header)
				if code != r.want {
					t.Errorf("%s: got %d %v, want %d", r.name, code, resp, r.want)
				}
			}
		})
	}
}

// Row 10: one request creates at most limits.maxEventsPerRequest events.
func TestEventsPerRequestCap(t *testing.T) {
	srv, rec := newServer(t, io.Discard, config.Hook{ID: "reg", Source: "distribution"})
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := 0; i < 5000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"e%d","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"acme/web","tag":"1.%d"},"request":{"host":"r.example.com"}}`, i, i)
	}
	b.WriteString(`]}`)
	code, body, _ := post(t, srv.URL+"/hooks/reg?token="+secret, []byte(b.String()), nil)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(body["error"]), "at most 50") {
		t.Errorf("got %d %.200v, want 413 at most 50", code, body)
	}
	if len(rec.events) != 0 {
		t.Errorf("%d events recorded from a refused request", len(rec.events))
	}
}

// Row 2: failed authentications are charged to the caller's address only: a flood of wrong tokens
// never costs a genuine delivery its budget, on that hook or any other.
func TestWrongTokenFloodSparesGenuineDeliveries(t *testing.T) {
	var logs syncBuffer
	// The failure budget refills once in 1,000 s: however slowly a loaded machine sends the flood,
	// only the burst is answered 401.
	cfg := &config.Config{MaxBodyBytes: 1 << 20, Limits: config.Limits{HookRate: 1, HookBurst: 3, GlobalRate: 1, GlobalBurst: 5,
		AuthFailureRate: 0.001, AuthFailureBurst: 10}}
	for _, id := range []string{"a", "b"} {
		cfg.Hooks = append(cfg.Hooks, config.Hook{ID: id, Token: secret, Source: "custom",
			Targets: []config.Target{{Repo: "apps", Workload: "deployment/web"}}})
	}
	rec := &recorder{}
	s, err := New(cfg, Deps{Updater: rec, Events: rec, Metrics: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	attacker := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	body := []byte(`{"push_data":{"tag":"1.0"},"repository":{"repo_url":"r.example.com","name":"web","namespace":"acme"}}`)
	codes := map[int]int{}
	for i := 0; i < 300; i++ {
		resp, err := attacker.Post(srv.URL+"/hooks/a?token=wrong", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[401] != 10 || codes[429] != 290 {
		t.Errorf("flood answers %v, want 10×401 then 429", codes)
	}
	for _, hook := range []string{"a", "b", "a"} {
		if code, resp, _ := post(t, srv.URL+"/hooks/"+hook+"?token="+secret, body, nil); code != http.StatusAccepted {
			t.Errorf("genuine delivery to %s: %d %v, want 202", hook, code, resp)
		}
	}
	if n := strings.Count(logs.String(), "webhook refused"); n != 1 {
		t.Errorf("%d log lines for the flood, want 1 per address per minute:\n%s", n, logs.String())
	}
}

// Row 14: with admin set, every read endpoint but the probes requires it; metrics.public opens
// /metrics alone.
func TestAdminGuardsEveryRead(t *testing.T) {
	for _, public := range []bool{false, true} {
		var logs syncBuffer
		cfg := &config.Config{MaxBodyBytes: 1 << 20, Admin: config.Admin{Token: "adm1n"}, Metrics: config.Metrics{Public: public},
			Limits: config.Limits{HookRate: 10, HookBurst: 10, GlobalRate: 10, GlobalBurst: 10, AuthFailureRate: 10, AuthFailureBurst: 10}}
		s, err := New(cfg, Deps{Updater: &recorder{}, Events: &recorder{}, Metrics: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		for path, want := range map[string]int{"/": 401, "/events/x": 401, "/ui/events/x": 401, "/metrics": map[bool]int{false: 401, true: 200}[public],
			"/healthz": 200, "/readyz": 200} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("public=%v GET %s without credentials: %d, want %d", public, path, resp.StatusCode, want)
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer adm1n")
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 401 {
				t.Errorf("GET %s with the admin token: 401", path)
			}
		}
		srv.Close()
		if strings.Contains(logs.String(), "open to anyone") {
			t.Errorf("admin configured, yet the log says the pages are open")
		}
	}
	var logs syncBuffer
	cfg := &config.Config{MaxBodyBytes: 1 << 20}
	if _, err := New(cfg, Deps{Updater: &recorder{}, Events: &recorder{}, Metrics: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "open to anyone") {
		t.Errorf("without admin the start-up log does not say the pages are open: %s", logs.String())
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer = testlog.Buffer

// FuzzAuthenticate: whatever a caller sends in the token parameter, the Authorization header and a
// signature header, it is let in only with the hook's real token or a real signature of the body;
// blank tokens configured by mistake never match.
func FuzzAuthenticate(f *testing.F) {
	f.Add("", "Bearer \u00a0", "sha256=00", []byte("{}"))
	f.Add(secret, "", "", []byte(`{"a":1}`))
	f.Add("", "", "sha1=ab,sha256=cd", []byte("x"))
	f.Fuzz(func(t *testing.T, token, authz, sigHeader string, body []byte) {
		tokens := hashTokens(hookTokens(&config.Hook{Token: secret, Tokens: []string{"", " ", "\u3000"}}))
		r, err := http.NewRequest(http.MethodPost, "http://x/hooks/h", nil)
		if err != nil {
			return
		}
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Hub-Signature-256", sigHeader)
		q := url.Values{"token": {token}}
		if authorized(tokens, r, q) {
			ok := false
			for _, o := range offeredCredentials(r, q) {
				ok = ok || o == secret
			}
			if !ok {
				t.Fatalf("authorized with token %q, Authorization %q", token, authz)
			}
		}
		keys := signingKeys(&config.Hook{Token: secret, Tokens: []string{""}})
		if signatureOf("ghcr").Verify(keys, r.Header, body) && !strings.Contains(strings.ToLower(sigHeader), sign(sha256.New, secret, body)) {
			t.Fatalf("signature %q accepted for a body it does not sign", sigHeader)
		}
	})
}

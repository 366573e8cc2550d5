package listener

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/gitops/gitopsconfig"
)

// poker records the repositories a forge's webhook asked to read now.
type poker struct {
	*recorder
	mu    sync.Mutex
	pokes []string
}

func (p *poker) PokeReviews(repo string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pokes = append(p.pokes, repo)
	return true
}

// TestForgeWebhooksGiteeCodeup: POST /forges/{repo} checks Gitee's deliveries by its password or
// signature and Codeup's by its secret token — genuine ones make imagehook read the pull requests
// (202), forged and missing ones are refused (401) and read nothing — and no answer or log line
// holds the secret.
func TestForgeWebhooksGiteeCodeup(t *testing.T) {
	const giteeKey, codeupSecret = "SEC-gitee-forge-key", "codeup-forge-secret"
	var logs bytes.Buffer
	cfg := &config.Config{MaxBodyBytes: 1 << 20, Limits: config.Limits{HookRate: 1000, HookBurst: 1000, GlobalRate: 1000, GlobalBurst: 1000, AuthFailureRate: 1000, AuthFailureBurst: 1000, MaxEventsPerRequest: 50},
		Repos: []config.Repo{
			{Repo: gitopsconfig.Repo{Name: "apps"}, WriteBack: config.WriteBack{Mode: "pullRequest", Provider: "gitee", WebhookSecret: giteeKey}},
			{Repo: gitopsconfig.Repo{Name: "infra"}, WriteBack: config.WriteBack{Mode: "pullRequest", Provider: "codeup", WebhookSecret: codeupSecret}},
		}}
	p := &poker{recorder: &recorder{}}
	s, err := New(cfg, Deps{Updater: p, Events: p, Reviews: p, Metrics: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ms := time.Now().UnixMilli()
	mac := hmac.New(sha256.New, []byte(giteeKey))
	mac.Write([]byte(strconv.FormatInt(ms, 10) + "\n" + giteeKey))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	body := []byte(`{"action":"merge","pull_request":{"number":2}}`)
	for _, tt := range []struct {
		name, repo string
		header     map[string]string
		code       int
	}{
		{"gitee password", "apps", map[string]string{"X-Gitee-Event": "Merge Request Hook", "X-Gitee-Token": giteeKey}, 202},
		{"gitee signature", "apps", map[string]string{"X-Gitee-Event": "Merge Request Hook", "X-Gitee-Token": sig, "X-Gitee-Timestamp": strconv.FormatInt(ms, 10)}, 202},
		{"gitee forged signature", "apps", map[string]string{"X-Gitee-Token": "AAAA" + sig[4:], "X-Gitee-Timestamp": strconv.FormatInt(ms, 10)}, 401},
		{"gitee replayed an hour and more later", "apps", map[string]string{"X-Gitee-Token": sig, "X-Gitee-Timestamp": strconv.FormatInt(ms-61*60*1000, 10)}, 401},
		{"gitee missing", "apps", map[string]string{"X-Gitee-Event": "Merge Request Hook"}, 401},
		{"gitee with codeup's header", "apps", map[string]string{"X-Codeup-Token": giteeKey}, 401},
		{"codeup genuine", "infra", map[string]string{"Codeup-Event": "Merge Request Hook", "X-Codeup-Token": codeupSecret}, 202},
		{"codeup forged", "infra", map[string]string{"X-Codeup-Token": "codeup-forge-secreT"}, 401},
		{"codeup missing", "infra", map[string]string{"Codeup-Event": "Merge Request Hook"}, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.mu.Lock()
			before := len(p.pokes)
			p.mu.Unlock()
			code, resp, _ := post(t, srv.URL+"/forges/"+tt.repo, body, tt.header)
			if code != tt.code {
				t.Fatalf("code %d, want %d: %v", code, tt.code, resp)
			}
			// Reads are at most one a second per repository: a genuine delivery inside that second
			// is folded into the next read, so it is waited for (and comes before the next case).
			poked := func() bool {
				p.mu.Lock()
				defer p.mu.Unlock()
				return len(p.pokes) > before
			}
			for deadline := time.Now().Add(5 * time.Second); tt.code == 202 && !poked() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if poked() != (tt.code == 202) {
				t.Errorf("read the pull requests: %v", poked())
			}
			for _, secret := range []string{giteeKey, codeupSecret, sig} {
				if text := forgeText(resp["error"]) + forgeText(resp["status"]); strings.Contains(text, secret) {
					t.Errorf("answer holds a secret: %v", resp)
				}
			}
		})
	}
	for _, secret := range []string{giteeKey, codeupSecret, sig} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs hold a secret:\n%s", logs.String())
		}
	}
}

func forgeText(v any) string { s, _ := v.(string); return s }

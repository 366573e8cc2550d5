package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// giteeSign computes Gitee's documented WebHook signature: base64 of HMAC-SHA256 over
// timestamp+"\n"+key, keyed by the key, then URL-encoded.
func giteeSign(key string, ms int64) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.FormatInt(ms, 10) + "\n" + key))
	return url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

// TestVerifyGitee: Gitee's password and signature schemes are accepted as documented (the
// signature URL-encoded or not, its timestamp within an hour); a forged, stale, future or missing
// one is refused.
func TestVerifyGitee(t *testing.T) {
	const key = "SEC-gitee-webhook-key"
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	unescaped, _ := url.QueryUnescape(giteeSign(key, ms))
	for _, tt := range []struct {
		name      string
		token, ts string
		want      bool
	}{
		{"password", key, "", true},
		{"signature", giteeSign(key, ms), strconv.FormatInt(ms, 10), true},
		{"signature not URL-encoded", unescaped, strconv.FormatInt(ms, 10), true},
		{"signature 59 minutes old", giteeSign(key, ms-59*60*1000), strconv.FormatInt(ms-59*60*1000, 10), true},
		{"signature two hours old", giteeSign(key, ms-2*3600*1000), strconv.FormatInt(ms-2*3600*1000, 10), false},
		{"signature two hours ahead", giteeSign(key, ms+2*3600*1000), strconv.FormatInt(ms+2*3600*1000, 10), false},
		{"signature for another timestamp", giteeSign(key, ms-1000), strconv.FormatInt(ms, 10), false},
		{"signature by another key", giteeSign("SEC-other", ms), strconv.FormatInt(ms, 10), false},
		{"signature without its timestamp", giteeSign(key, ms), "", false},
		{"wrong password", "guess", "", false},
		{"missing", "", strconv.FormatInt(ms, 10), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("X-Gitee-Token", tt.token)
			}
			if tt.ts != "" {
				h.Set("X-Gitee-Timestamp", tt.ts)
			}
			if got := VerifyGitee(h, key, now); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if VerifyGitee(http.Header{"X-Gitee-Token": {""}}, "", now) {
		t.Error("an empty secret accepted an empty token")
	}
}

// TestVerifyCodeup: Codeup's secret token in X-Codeup-Token, and nothing else.
func TestVerifyCodeup(t *testing.T) {
	const secret = "codeup-secret-token"
	for _, tt := range []struct {
		name   string
		header http.Header
		want   bool
	}{
		{"genuine", http.Header{"X-Codeup-Token": {secret}}, true},
		{"forged", http.Header{"X-Codeup-Token": {"codeup-secret-tokem"}}, false},
		{"missing", http.Header{"Codeup-Event": {"Merge Request Hook"}}, false},
		{"GitLab's header", http.Header{"X-Gitlab-Token": {secret}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyCodeup(tt.header, secret); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzVerifyGitee: whatever headers arrive, verification neither panics nor accepts anything but
// the password or a signature made with the key for a timestamp within the hour.
func FuzzVerifyGitee(f *testing.F) {
	const key = "SEC-fuzz-key"
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f.Add(key, "")
	f.Add(giteeSign(key, now.UnixMilli()), strconv.FormatInt(now.UnixMilli(), 10))
	f.Add("x", "-9223372036854775808")
	f.Add("", "99999999999999999999")
	f.Fuzz(func(t *testing.T, token, ts string) {
		h := http.Header{"X-Gitee-Token": {token}, "X-Gitee-Timestamp": {ts}}
		if !VerifyGitee(h, key, now) {
			return
		}
		tok := strings.TrimSpace(token)
		ms, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		unescaped, _ := url.QueryUnescape(giteeSign(key, ms))
		signed := err == nil && (tok == giteeSign(key, ms) || tok == unescaped)
		if tok != key && !signed {
			t.Errorf("accepted token %q timestamp %q", token, ts)
		}
	})
}

// TestVerifyDelivery: the one table authenticates every provider forge.New builds, each by its
// documented scheme — GitHub's and Gitea's body HMACs (Gitea's also under GitHub's header),
// GitLab's token, Gitee's password, Codeup's token — and refuses a wrong secret, a body that was
// not signed, a blank secret and an unknown provider.
func TestVerifyDelivery(t *testing.T) {
	for _, p := range Providers {
		if e, ok := lookup(p, false); !ok || e.verify == nil {
			t.Errorf("provider %s has no webhook authentication", p)
		}
	}
	const secret = "a-long-webhook-secret"
	body := []byte(`{"action":"closed"}`)
	hexMAC := func(key string, b []byte) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(b)
		return hex.EncodeToString(m.Sum(nil))
	}
	now := time.Now()
	for _, tt := range []struct {
		name, provider string
		header         http.Header
		want           bool
	}{
		{"github", "github", http.Header{"X-Hub-Signature-256": {"sha256=" + hexMAC(secret, body)}}, true},
		{"github wrong secret", "github", http.Header{"X-Hub-Signature-256": {"sha256=" + hexMAC("other", body)}}, false},
		{"github other body", "github", http.Header{"X-Hub-Signature-256": {"sha256=" + hexMAC(secret, []byte("{}"))}}, false},
		{"gitea", "gitea", http.Header{"X-Gitea-Signature": {hexMAC(secret, body)}}, true},
		{"forgejo", "gitea", http.Header{"X-Forgejo-Signature": {hexMAC(secret, body)}}, true},
		{"gitea under github's header", "gitea", http.Header{"X-Hub-Signature-256": {"sha256=" + hexMAC(secret, body)}}, true},
		{"github does not take gitea's header", "github", http.Header{"X-Gitea-Signature": {hexMAC(secret, body)}}, false},
		{"gitlab", "gitlab", http.Header{"X-Gitlab-Token": {secret}}, true},
		{"gitlab spaced", "gitlab", http.Header{"X-Gitlab-Token": {" " + secret + "\u00a0"}}, true},
		{"gitlab wrong", "gitlab", http.Header{"X-Gitlab-Token": {"other"}}, false},
		{"gitlab none", "gitlab", http.Header{}, false},
		{"gitee password", "gitee", http.Header{"X-Gitee-Token": {secret}}, true},
		{"codeup", "codeup", http.Header{"X-Codeup-Token": {secret}}, true},
		{"codeup under gitlab's header", "codeup", http.Header{"X-Gitlab-Token": {secret}}, false},
		{"unknown provider", "bitbucket", http.Header{"X-Hub-Signature-256": {"sha256=" + hexMAC(secret, body)}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyDelivery(tt.provider, tt.header, body, secret, now); got != tt.want {
				t.Errorf("VerifyDelivery = %v, want %v", got, tt.want)
			}
			if VerifyDelivery(tt.provider, tt.header, body, " ", now) {
				t.Error("a blank secret authenticated a delivery")
			}
		})
	}
}

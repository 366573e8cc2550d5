package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/imagehook/imagehook/registry"
)

// webhookAuth says whether a delivery of a forge's webhook is genuine for the repository's webhook
// secret (never blank: the caller refuses a repository without one).
type webhookAuth func(h http.Header, body []byte, secret string, now time.Time) bool

// Forges sign their webhooks with a hex HMAC of the body, as the registries on them do.
var (
	githubSignature = &registry.Signature{Headers: []string{"X-Hub-Signature-256"}, Hash: sha256.New, Prefix: "sha256="}
	giteaSignature  = &registry.Signature{Headers: []string{"X-Gitea-Signature", "X-Forgejo-Signature"}, Hash: sha256.New}
)

// VerifyDelivery reports whether a webhook delivery from the provider's forge is genuine for the
// repository's webhook secret, by the provider's documented scheme (its verifier in the provider
// table, providers.go); a name that is not a provider's — an alias such as forgejo included, as
// config accepts none — or a blank secret authenticates nothing.
func VerifyDelivery(provider string, h http.Header, body []byte, secret string, now time.Time) bool {
	p, ok := lookup(provider, false)
	return ok && strings.TrimFunc(secret, unicode.IsSpace) != "" && p.verify(h, body, secret, now)
}

// signedWith accepts a delivery whose body is signed by any of the schemes.
func signedWith(schemes ...*registry.Signature) webhookAuth {
	return func(h http.Header, body []byte, secret string, _ time.Time) bool {
		ok := false
		for _, s := range schemes {
			ok = s.Verify([]string{secret}, h, body) || ok
		}
		return ok
	}
}

// verifyGitLab checks GitLab's secret token, sent as is in X-Gitlab-Token (it signs nothing).
func verifyGitLab(h http.Header, _ []byte, secret string, _ time.Time) bool {
	token := strings.TrimFunc(h.Get("X-Gitlab-Token"), unicode.IsSpace)
	return h.Get("X-Gitlab-Token") != "" && equal(token, secret)
}

// giteeSkew is how far a signed Gitee delivery's timestamp may be from now: Gitee documents an
// hour.
const giteeSkew = time.Hour

// VerifyGitee checks a Gitee webhook delivery against the hook's secret, by either of Gitee's
// documented schemes: the WebHook password, sent as is in X-Gitee-Token; or the signing key,
// X-Gitee-Token then being base64(HMAC-SHA256(key, timestamp+"\n"+key)) — URL-encoded as Gitee
// generates it, or not — for the millisecond X-Gitee-Timestamp, which must be within an hour of
// now. The signature covers no body: a delivery is only ever a reason to read the forge's API.
func VerifyGitee(h http.Header, secret string, now time.Time) bool {
	token := strings.TrimSpace(h.Get("X-Gitee-Token"))
	if token == "" || secret == "" {
		return false
	}
	if equal(token, secret) {
		return true
	}
	ts := strings.TrimSpace(h.Get("X-Gitee-Timestamp"))
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.UnixMilli(ms)); d > giteeSkew || d < -giteeSkew {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "\n" + secret))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	// Both are compared, so that neither answer's time says which spelling was sent.
	plain, escaped := equal(token, sig), equal(token, url.QueryEscape(sig))
	return plain || escaped
}

// verifyGiteeDelivery is VerifyGitee as the provider table's verifier (the signature covers no body).
func verifyGiteeDelivery(h http.Header, _ []byte, secret string, now time.Time) bool {
	return VerifyGitee(h, secret, now)
}

// verifyCodeupDelivery is VerifyCodeup as the provider table's verifier.
func verifyCodeupDelivery(h http.Header, _ []byte, secret string, _ time.Time) bool {
	return VerifyCodeup(h, secret)
}

// VerifyCodeup checks a Codeup webhook delivery: its Secret Token arrives as is in X-Codeup-Token.
func VerifyCodeup(h http.Header, secret string) bool {
	token := strings.TrimSpace(h.Get("X-Codeup-Token"))
	return token != "" && secret != "" && equal(token, secret)
}

// equal compares in constant time whatever the lengths (hashed first).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

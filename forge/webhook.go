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
)

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

package listener

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/imagehook/imagehook/config"
)

// signature is how a registry signs its deliveries: a hex HMAC of the body, keyed with the shared
// secret, in one of these headers.
type signature struct {
	headers []string
	hash    func() hash.Hash
	prefix  string
}

// signatures lists the formats whose registries sign: for them a valid signature is required and a
// token in the URL is not enough.
var signatures = map[string]*signature{
	"ghcr":  {headers: []string{"X-Hub-Signature-256"}, hash: sha256.New, prefix: "sha256="},
	"gitea": {headers: []string{"X-Gitea-Signature", "X-Forgejo-Signature"}, hash: sha256.New},
	"nexus": {headers: []string{"X-Nexus-Webhook-Signature"}, hash: sha1.New},
}

func customSignature(s *config.Signature) (*signature, error) {
	if s.Header == "" {
		return nil, errors.New("header is required")
	}
	h := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}[strings.ToLower(s.Algorithm)]
	if h == nil {
		return nil, fmt.Errorf("algorithm %q: want sha1, sha256 or sha512", s.Algorithm)
	}
	return &signature{headers: []string{s.Header}, hash: h, prefix: s.Prefix}, nil
}

func hookTokens(hook *config.Hook) []string {
	if hook.Token == "" {
		return hook.Tokens
	}
	return append([]string{hook.Token}, hook.Tokens...)
}

// verify checks the body's signature against every token of the hook (rotation), in constant time.
func (s *signature) verify(hook *config.Hook, h http.Header, body []byte) bool {
	var sent []byte
	for _, name := range s.headers {
		if v := h.Get(name); v != "" {
			var err error
			if sent, err = hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(v), s.prefix)); err != nil {
				return false
			}
			break
		}
	}
	if sent == nil {
		return false
	}
	ok := false
	for _, t := range hookTokens(hook) {
		mac := hmac.New(s.hash, []byte(t))
		mac.Write(body)
		ok = hmac.Equal(mac.Sum(nil), sent) || ok
	}
	return ok
}

// authorized compares every credential the request offers with every token of the hook. Both sides
// are hashed first so that the comparison takes the same time whatever their lengths.
func authorized(hook *config.Hook, r *http.Request, q url.Values) bool {
	var offered []string
	if t := q.Get("token"); t != "" {
		offered = append(offered, t)
	}
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			offered = append(offered, strings.TrimSpace(t))
		} else {
			offered = append(offered, a) // Harbor and Azure send the bare secret
		}
	}
	match := 0
	for _, o := range offered {
		oh := sha256.Sum256([]byte(o))
		for _, t := range hookTokens(hook) {
			th := sha256.Sum256([]byte(t))
			match |= subtle.ConstantTimeCompare(oh[:], th[:])
		}
	}
	return match == 1
}

// allowedAddr applies a hook's allowedCIDRs to the caller's address.
func allowedAddr(hook *config.Hook, remote string) bool {
	if len(hook.AllowedCIDRs) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, c := range hook.AllowedCIDRs {
		if _, n, err := net.ParseCIDR(c); err == nil && n.Contains(ip) {
			return true
		}
		if a := net.ParseIP(c); a != nil && a.Equal(ip) {
			return true
		}
	}
	return false
}

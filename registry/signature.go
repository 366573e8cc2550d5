package registry

import (
	"crypto/hmac"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
	"unicode"
)

// Signature is how a registry signs its deliveries: a hex HMAC of the body, keyed with the shared
// secret, in the first of these headers present, after an optional prefix. Forges sign their
// webhooks the same way (package forge's table names their headers).
type Signature struct {
	Headers []string
	Hash    func() hash.Hash
	Prefix  string
}

// Verify checks the body's signature against every key (rotation), in constant time; a blank key
// is never one.
func (s *Signature) Verify(keys []string, h http.Header, body []byte) bool {
	sent := s.sent(h)
	if len(sent) == 0 || len(keys) == 0 {
		return false
	}
	ok := false
	for _, k := range keys {
		if strings.TrimFunc(k, unicode.IsSpace) == "" {
			continue
		}
		mac := hmac.New(s.Hash, []byte(k))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, got := range sent {
			ok = hmac.Equal(want, got) || ok
		}
	}
	return ok
}

// sent returns the signatures a request carries: the first header present, with the prefix
// removed. Like adnanh/webhook, a value may list several signatures separated by commas; then only
// those with the prefix count.
func (s *Signature) sent(h http.Header) [][]byte {
	for _, name := range s.Headers {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			continue
		}
		var parts []string
		if strings.Contains(v, ",") {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); s.Prefix == "" || strings.HasPrefix(p, s.Prefix) {
					parts = append(parts, strings.TrimPrefix(p, s.Prefix))
				}
			}
		} else {
			parts = []string{strings.TrimPrefix(v, s.Prefix)}
		}
		var out [][]byte
		for _, p := range parts {
			if b, err := hex.DecodeString(p); err == nil && len(b) > 0 {
				out = append(out, b)
			}
		}
		return out
	}
	return nil
}

package listener

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/registry"
)

// signature is a signature scheme the listener verifies: a registry's own (registry.SignatureOf),
// or a hook's signature rule.
type signature struct{ registry.Signature }

func signatureOf(source string) *signature {
	if s := registry.SignatureOf(source); s != nil {
		return &signature{*s}
	}
	return nil
}

// customSignature builds a hook's signature rule; config has validated it.
func customSignature(s *config.Signature) *signature {
	h := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}[strings.ToLower(s.Algorithm)]
	return &signature{registry.Signature{Headers: []string{s.Header}, Hash: h, Prefix: s.Prefix}}
}

// hookTokens returns the hook's non-blank tokens. Config refuses blank ones; skipping them here too
// means that no code path can ever treat "" as a credential.
func hookTokens(hook *config.Hook) []string {
	var out []string
	for _, t := range append([]string{hook.Token}, hook.Tokens...) {
		if !config.Blank(t) {
			out = append(out, t)
		}
	}
	return out
}

// signingKeys returns the secrets a signature is checked with: the signature's own secret when it
// has one, else the hook's tokens (rotation).
func signingKeys(hook *config.Hook) []string {
	if hook.Signature != nil && !config.Blank(hook.Signature.Secret) {
		return []string{hook.Signature.Secret}
	}
	return hookTokens(hook)
}

// sent returns the signatures a request carries: the first header present, with the prefix
// removed. Like adnanh/webhook, a value may list several signatures separated by commas; then only
// those with the prefix count.
func (s *signature) sent(h http.Header) [][]byte {
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

// verify checks the body's signature against every key (rotation), in constant time.
func (s *signature) verify(keys []string, h http.Header, body []byte) bool {
	sent := s.sent(h)
	if len(sent) == 0 || len(keys) == 0 {
		return false
	}
	ok := false
	for _, k := range keys {
		if config.Blank(k) {
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

// offeredCredentials returns the tokens a request offers, in the URL or the Authorization header,
// trimmed of any Unicode space; a credential that is blank after trimming is not offered at all.
func offeredCredentials(r *http.Request, q url.Values) []string {
	var out []string
	add := func(v string) {
		if v = config.TrimSecret(v); v != "" {
			out = append(out, v)
		}
	}
	add(q.Get("token"))
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			add(t)
		} else {
			add(a) // Harbor and Azure send the bare secret
		}
	}
	return out
}

// authorized compares every credential the request offers with every token of the hook. Both sides
// are hashed first so that the comparison takes the same time whatever their lengths.
func authorized(tokens [][32]byte, r *http.Request, q url.Values) bool {
	match := 0
	for _, o := range offeredCredentials(r, q) {
		oh := sha256.Sum256([]byte(o))
		for _, th := range tokens {
			match |= subtle.ConstantTimeCompare(oh[:], th[:])
		}
	}
	return match == 1
}

func hashTokens(tokens []string) [][32]byte {
	out := make([][32]byte, len(tokens))
	for i, t := range tokens {
		out[i] = sha256.Sum256([]byte(t))
	}
	return out
}

// allowedAddr applies a hook's allowedCIDRs to the caller's address.
func allowedAddr(hook *config.Hook, remote string) bool {
	if len(hook.AllowedCIDRs) == 0 {
		return true
	}
	ip := net.ParseIP(clientAddr(remote))
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

// clientAddr is the caller's address without the port: the key of the failed-authentication budget.
// imagehook does not trust X-Forwarded-For (anyone can send it).
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// failureBudget bounds failed authentications per client address. It is separate from the hooks'
// budgets, which only authenticated deliveries are charged to: a flood of wrong tokens can never
// make a genuine delivery wait or fail.
type failureBudget struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	addrs map[string]*addrFailures
}

type addrFailures struct {
	lim     *rate.Limiter
	logged  time.Time
	dropped int
}

// maxTrackedAddrs bounds the memory of the failure budget; past it, addresses whose budget has
// refilled are forgotten.
const maxTrackedAddrs = 10000

func newFailureBudget(perSecond float64, burst int) *failureBudget {
	return &failureBudget{limit: rate.Limit(perSecond), burst: max(burst, 1), addrs: map[string]*addrFailures{}}
}

// exhausted reports whether addr has used up its budget of failures.
func (b *failureBudget) exhausted(addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.addrs[addr]
	return a != nil && a.lim.Tokens() < 1
}

// charge records one failure of addr. It reports whether the failure is within the budget (else the
// caller answers 429), and how many failures went unlogged since the address's last log line when
// one is due now (at most one a minute per address), or -1.
func (b *failureBudget) charge(addr string, now time.Time) (within bool, logNow int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.addrs[addr]
	if a == nil {
		if len(b.addrs) >= maxTrackedAddrs {
			for k, v := range b.addrs {
				if v.lim.TokensAt(now) >= float64(b.burst) {
					delete(b.addrs, k)
				}
			}
		}
		a = &addrFailures{lim: rate.NewLimiter(b.limit, b.burst)}
		b.addrs[addr] = a
	}
	within = a.lim.AllowN(now, 1)
	if now.Sub(a.logged) < time.Minute {
		a.dropped++
		return within, -1
	}
	n := a.dropped
	a.logged, a.dropped = now, 0
	return within, n
}

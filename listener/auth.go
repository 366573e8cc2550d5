package listener

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"log/slog"
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

// authFault is why a delivery's credentials were refused: failureBudget.refuse picks the answer by it, and
// its String is the log's wording.
type authFault int

const (
	faultNone authFault = iota
	faultToken
	faultSignature
	// faultExhausted: the caller's address is past its failure budget; nothing was checked.
	faultExhausted
	// faultNoSecret: the repository has no webhook secret to check a forge's delivery with.
	faultNoSecret
)

func (f authFault) String() string {
	switch f {
	case faultToken:
		return "bad or missing token"
	case faultSignature:
		return "bad or missing signature"
	case faultExhausted:
		return "too many failed authentications"
	case faultNoSecret:
		return "the repository has no writeBack.webhookSecret"
	}
	return "none"
}

// failureBudget bounds failed authentications per client address. It is separate from the hooks'
// budgets, which only authenticated deliveries are charged to: a flood of wrong tokens can never
// make a genuine delivery wait or fail.
type failureBudget struct {
	limit rate.Limit
	burst int
	log   *slog.Logger

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

func newFailureBudget(perSecond float64, burst int, log *slog.Logger) *failureBudget {
	return &failureBudget{limit: rate.Limit(perSecond), burst: max(burst, 1), log: log, addrs: map[string]*addrFailures{}}
}

// authCaller is who refuses a delivery: what is refused and under which name in the log (a
// hook's delivery, a forge's), and the status of a refusal within the budget.
type authCaller struct {
	what, key, name string
	code            int
	// signedOnly: the caller checks signatures only, so every refusal names the signature.
	signedOnly bool
}

// refuse is the one answer to a failed authentication, of a hook's delivery or a forge's: it
// charges the failure to the caller's address, logs it at most once a minute per address, and
// returns the error to answer: the caller's status (401 or the hook's mismatch status), 429 past
// the address's budget. The error never holds what was offered.
func (b *failureBudget) refuse(c authCaller, addr string, why authFault) error {
	within, logNow := b.charge(addr, time.Now())
	if logNow >= 0 {
		b.log.Warn(c.what+" refused: "+why.String(), c.key, c.name, "remote", addr, "unlogged_since_last", logNow)
	}
	if !within {
		return &statusError{code: http.StatusTooManyRequests, msg: "too many failed authentications from this address"}
	}
	if why == faultSignature || c.signedOnly {
		return fail(c.code, "invalid or missing signature")
	}
	return fail(c.code, "invalid or missing token")
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

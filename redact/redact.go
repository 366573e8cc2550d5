// Package redact is imagehook's one redactor: every secret the configuration holds is replaced by
// "***" wherever text leaves the process — log lines, event errors, the status page, mail,
// check-config and history. Secrets are collected once, at load, by config; this package only
// replaces them.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Mask is what a secret becomes.
const Mask = "***"

// ShortSecret is the length, in characters, below which a secret is masked only as a whole token:
// a two-letter secret masked inside every word that holds it would make logs unreadable, and the
// configuration warns about such a secret (config.Config.Warnings).
const ShortSecret = 8

// Redactor replaces known secret values in text. The zero value and nil redact nothing. It is safe
// for concurrent use, and Add teaches it secrets that arrive later (a reloaded hooks directory).
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
	r       *strings.Replacer
	// short are the spellings of short secrets, longest first: masked only where no letter, digit
	// or underscore touches them.
	short []string
}

// New returns a redactor for the given secrets. Each secret is also matched in its URL-encoded
// spellings, since credentials reach error texts inside URLs.
func New(secrets []string) *Redactor {
	red := &Redactor{}
	red.Add(secrets)
	return red
}

// Add adds secrets; the ones known before stay (old events and logs may still quote them).
func (red *Redactor) Add(secrets []string) {
	red.mu.Lock()
	defer red.mu.Unlock()
	red.secrets = append(red.secrets, secrets...)
	red.r, red.short = replacer(red.secrets)
}

// replacer returns the replacer of the long secrets' spellings, and the short secrets' spellings
// (each secret is also matched URL-encoded, since credentials reach error texts inside URLs).
func replacer(secrets []string) (*strings.Replacer, []string) {
	seen := map[string]bool{}
	var long, short []string
	add := func(s string, isShort bool) {
		switch {
		case s == "" || seen[s]:
		case isShort:
			short = append(short, s)
		default:
			long = append(long, s)
		}
		seen[s] = true
	}
	for _, s := range secrets {
		isShort := utf8.RuneCountInString(s) < ShortSecret
		add(s, isShort)
		add(url.QueryEscape(s), isShort)
		add(url.PathEscape(s), isShort)
		add((&url.URL{User: url.User(s)}).User.String(), isShort)
	}
	// Longest first, so that a secret containing another is masked whole.
	byLength := func(a, b string) int { return len(b) - len(a) }
	slices.SortFunc(long, byLength)
	slices.SortFunc(short, byLength)
	if len(long) == 0 {
		return nil, short
	}
	pairs := make([]string, 0, 2*len(long))
	for _, s := range long {
		pairs = append(pairs, s, Mask)
	}
	return strings.NewReplacer(pairs...), short
}

// wordRune reports whether r continues a word: a short secret touching one is part of another
// word, not the secret.
func wordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// maskToken masks every whole-token occurrence of tok in s.
func maskToken(s, tok string) string {
	var b strings.Builder
	last := 0 // s[last:] is not written yet
	for from := 0; ; {
		i := strings.Index(s[from:], tok)
		if i < 0 {
			break
		}
		i += from
		end := i + len(tok)
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (i == 0 || !wordRune(before)) && (end == len(s) || !wordRune(after)) {
			b.WriteString(s[last:i])
			b.WriteString(Mask)
			last, from = end, end
		} else {
			from = i + 1
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// String returns s with every secret masked.
func (red *Redactor) String(s string) string {
	if red == nil || s == "" {
		return s
	}
	red.mu.RLock()
	r, short := red.r, red.short
	red.mu.RUnlock()
	if r != nil {
		s = r.Replace(s)
	}
	for _, tok := range short {
		s = maskToken(s, tok)
	}
	// A URL echoed with credentials configured nowhere (a token as the user name) is masked too.
	return URLs(s)
}

// userinfo finds the user information of URLs in a text: a scheme, "://", and everything up to the
// last "@" before the host ends (a password with an unescaped "@" is still caught whole).
var userinfo = regexp.MustCompile(`\b([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s"'<>@]*(?:@[^/?#\s"'<>@]*)*)@`)

// URLs masks the user information of every URL in text — the one rule of which URL parts are
// secret, for config errors, check-config and logs alike: the user name and password of any URL
// (tokens are often given as the user name: https://TOKEN@host/...), except an SSH user name
// (ssh://git@host), which is not a secret. It needs no known secrets, and a URL that does not
// parse is masked the same way.
func URLs(text string) string {
	if !strings.Contains(text, "@") {
		return text
	}
	return userinfo.ReplaceAllStringFunc(text, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		user, _, hasPassword := strings.Cut(info, ":")
		ssh := slices.Contains([]string{"ssh", "git+ssh", "ssh+git"}, strings.ToLower(scheme))
		switch {
		case ssh && hasPassword:
			info = user + ":" + Mask
		case ssh:
		case hasPassword:
			info = Mask + ":" + Mask
		default:
			info = Mask
		}
		return scheme + "://" + info + "@"
	})
}

// URL is URLs for one URL.
func URL(raw string) string { return URLs(raw) }

// Handler wraps h so that every message and attribute value is redacted before it is written.
func (red *Redactor) Handler(h slog.Handler) slog.Handler {
	if red == nil {
		return h
	}
	return &handler{next: h, r: red}
}

type handler struct {
	next slog.Handler
	r    *Redactor
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(red), r: h.r}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), r: h.r}
}

// attr redacts one attribute: strings, errors and anything else printed with %v become redacted
// strings; groups are walked.
func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = h.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		return slog.String(a.Key, h.r.String(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

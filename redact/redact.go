// Package redact is imagehook's one redactor: every secret the configuration holds is replaced by
// "***" wherever text leaves the process — log lines, event errors, the status page, mail,
// check-config and history. Secrets are collected once, at load, by config; this package only
// replaces them.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what a secret becomes.
const Mask = "***"

// Redactor replaces known secret values in text. The zero value and nil redact nothing. It is safe
// for concurrent use, and Add teaches it secrets that arrive later (a reloaded hooks directory).
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
	r       *strings.Replacer
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
	red.r = replacer(red.secrets)
}

func replacer(secrets []string) *strings.Replacer {
	seen := map[string]bool{}
	var all []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			all = append(all, s)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		add((&url.URL{User: url.User(s)}).User.String())
	}
	if len(all) == 0 {
		return nil
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Mask)
	}
	return strings.NewReplacer(pairs...)
}

// String returns s with every secret masked.
func (red *Redactor) String(s string) string {
	if red == nil || s == "" {
		return s
	}
	red.mu.RLock()
	r := red.r
	red.mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

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

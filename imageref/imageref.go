// Package imageref parses and compares container image references. Parsing and validation are
// go-containerregistry's; this package keeps the spelling a person wrote, which a rewrite must
// preserve, beside the canonical form that comparisons use.
package imageref

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// MaxLen bounds a reference; the distribution spec caps a repository name at 255 characters, and a
// tag (128) and a digest (~135) come on top.
const MaxLen = 512

// ErrInvalid is wrapped by every parse failure.
var ErrInvalid = errors.New("invalid image reference")

// Ref is a parsed image reference.
type Ref struct {
	// Repo is the repository as written, with its registry host if one was written.
	Repo   string
	Tag    string
	Digest string
	// canonical is the fully qualified repository (index.docker.io/library/nginx for nginx).
	canonical string
}

// Parse validates s and splits it into repository, tag and digest.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(s) > MaxLen {
		return Ref{}, fmt.Errorf("%w: longer than %d characters", ErrInvalid, MaxLen)
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c > 0x7e {
			return Ref{}, fmt.Errorf("%w %q: contains whitespace, control or non-ASCII characters", ErrInvalid, s)
		}
	}
	var r Ref
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
	}
	hasTag := false
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		r.Tag, rest, hasTag = rest[i+1:], rest[:i], true
	}
	r.Repo = rest
	repo, err := name.NewRepository(r.Repo)
	if err != nil {
		return Ref{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
	}
	if hasTag {
		if !validTag(r.Tag) {
			return Ref{}, fmt.Errorf("%w %q: tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'", ErrInvalid, s)
		}
	}
	if strings.Contains(s, "@") {
		if _, err := name.NewDigest(r.Repo + "@" + r.Digest); err != nil {
			return Ref{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
		}
	}
	r.canonical = repo.Name()
	return r, nil
}

// validTag applies the distribution spec's tag grammar, [\w][\w.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidDigest reports whether d is a well-formed digest such as sha256:<64 hex>.
func ValidDigest(d string) bool {
	_, err := name.NewDigest("x@" + d)
	return err == nil
}

// Canonical returns the fully qualified repository: docker.io shorthand is expanded, so nginx,
// library/nginx and docker.io/library/nginx all give index.docker.io/library/nginx.
func (r Ref) Canonical() string { return r.canonical }

// Host returns the registry host of the canonical repository.
func (r Ref) Host() string {
	h, _, _ := strings.Cut(r.canonical, "/")
	return h
}

// Path returns the canonical repository without its host.
func (r Ref) Path() string {
	_, p, _ := strings.Cut(r.canonical, "/")
	return p
}

// SameRepository reports whether r and o name the same repository, whatever their spelling.
func (r Ref) SameRepository(o Ref) bool { return r.canonical == o.canonical }

// String returns the reference in the spelling it was parsed from.
func (r Ref) String() string {
	s := r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// WithRepo returns r with its repository spelled as in o, for writing a new version in a manifest's
// own spelling.
func (r Ref) WithRepo(o Ref) Ref {
	r.Repo = o.Repo
	r.canonical = o.canonical
	return r
}

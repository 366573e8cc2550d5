// Package registry knows the webhook payload of every registry imagehook takes deliveries from: one
// file per format, each turning raw bytes into the pushes they describe, and which formats sign
// their deliveries. It imports no config: a new registry is one file and one line in the formats
// table, testable from raw bytes.
package registry

import (
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
)

// Request is what a payload parser sees of a webhook call.
type Request struct {
	Body   []byte
	Header http.Header
	Query  url.Values
	// RegistryHost replaces the host a payload implies (the hook's registryHost), or "".
	RegistryHost string
}

// A Parser turns one registry's payload into the pushes it describes. It returns an *Ignored error
// for deliveries that are not pushes (pings, tests, deletes).
type Parser func(r *Request) ([]Parsed, error)

// Parsed is one push found in a payload, with what was wrong but survivable in it.
type Parsed struct {
	Push     event.Push
	Warnings []string
	// Delivery is the registry's id of this push's delivery, when the payload has one (see
	// deliveryIDs for the headers).
	Delivery string
}

// parsers maps a source name (the hook's source, or the old tool's repo_type) to its parser; each
// lives in its own file.
var parsers = map[string]Parser{
	"aliyun":       parseAliyun,
	"dockerhub":    parseDockerHub,
	"custom":       parseCustom,
	"harbor":       parseHarbor,
	"tcr":          parseTCR,
	"quay":         parseQuay,
	"ghcr":         parseGHCR,
	"azure":        parseAzure,
	"distribution": parseDistribution,
	"gcr":          parseGCR,
	"jfrog":        parseJFrog,
	"nexus":        parseNexus,
	"gitea":        parseGitea,
}

// Known reports whether source names a payload format.
func Known(source string) bool { return parsers[source] != nil }

// Parse turns a delivery in the named format into the pushes it describes. It returns an *Ignored
// error for deliveries that are not pushes, and an error wrapping ErrPayload for bodies that
// cannot be used (including JSON nested deeper than 64 levels).
func Parse(source string, r *Request) ([]Parsed, error) {
	p := parsers[source]
	if p == nil {
		return nil, fmt.Errorf("%w: unknown format %q", ErrPayload, source)
	}
	if tooDeep(r.Body) {
		return nil, payloadErr("JSON nested deeper than %d levels", maxDepth)
	}
	return p(r)
}

// signatures lists the formats whose registries sign: for them a valid signature is required and a
// token in the URL is not enough.
var signatures = map[string]*Signature{
	"ghcr":  {Headers: []string{"X-Hub-Signature-256"}, Hash: sha256.New, Prefix: "sha256="},
	"gitea": {Headers: []string{"X-Gitea-Signature", "X-Forgejo-Signature"}, Hash: sha256.New},
	"nexus": {Headers: []string{"X-Nexus-Webhook-Signature"}, Hash: sha1.New},
}

// SignatureOf returns how the format's registry signs, or nil when it does not.
func SignatureOf(source string) *Signature { return signatures[source] }

// Sources lists the payload formats understood, sorted.
func Sources() []string {
	out := make([]string, 0, len(parsers))
	for k := range parsers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Ignored is a delivery that is well-formed but asks for nothing: answered 200 "ignored".
type Ignored struct{ Reason string }

// Error returns the reason, marked as an ignored delivery.
func (e *Ignored) Error() string { return "ignored: " + e.Reason }

// ErrPayload marks a payload that cannot be used: answered 400.
var ErrPayload = errors.New("bad payload")

func payloadErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPayload, fmt.Sprintf(format, args...))
}

// makePush validates the image reference a parser built, and keeps the digest only when valid.
func makePush(source, image, digest, pusher string, at time.Time) (Parsed, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return Parsed{}, payloadErr("%v", err)
	}
	if ref.Tag == "" {
		return Parsed{}, payloadErr("image %s has no tag", image)
	}
	if ref.Digest != "" {
		digest, ref.Digest = ref.Digest, ""
	}
	var warnings []string
	digest = strings.TrimSpace(digest)
	if digest != "" && !imageref.ValidDigest(digest) {
		warnings = append(warnings, fmt.Sprintf("payload digest %q is malformed and was ignored", truncate(digest, 80)))
		digest = ""
	}
	// The pusher is free text from the payload: one line, so that it cannot add lines to a commit
	// message or a mail.
	return Parsed{Push: event.Push{Image: ref.String(), Digest: digest, Pusher: event.OneLine(truncate(pusher, 128)), PushedAt: at, Source: source}, Warnings: warnings}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// withHost replaces the registry host of a repository path when the hook names one.
func withHost(registryHost, host, repoPath string) string {
	if registryHost != "" {
		host = registryHost
	}
	if host == "" {
		return repoPath
	}
	return strings.TrimSuffix(host, "/") + "/" + strings.TrimPrefix(repoPath, "/")
}

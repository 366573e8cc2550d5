package listener

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
)

// Request is what a payload parser sees of a webhook call.
type Request struct {
	Body   []byte
	Header http.Header
	Query  url.Values
	Hook   *config.Hook
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

// errPayload marks a payload that cannot be used: answered 400.
var errPayload = errors.New("bad payload")

func payloadErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errPayload, fmt.Sprintf(format, args...))
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
func withHost(hook *config.Hook, host, repoPath string) string {
	if hook != nil && hook.RegistryHost != "" {
		host = hook.RegistryHost
	}
	if host == "" {
		return repoPath
	}
	return strings.TrimSuffix(host, "/") + "/" + strings.TrimPrefix(repoPath, "/")
}

// CheckHooks reports hooks whose source is not a known payload format.
func CheckHooks(cfg *config.Config) error {
	for _, h := range cfg.Hooks {
		if h.Source != "" && h.Source != "auto" && parsers[h.Source] == nil {
			return fmt.Errorf("hooks[%s].source: unknown %q (known: auto, %s)", h.ID, h.Source, strings.Join(Sources(), ", "))
		}
		if _, err := parsePolicy(h.Tags); err != nil {
			return fmt.Errorf("hooks[%s].tags: %w", h.ID, err)
		}
		if h.Signature != nil {
			if _, err := customSignature(h.Signature); err != nil {
				return fmt.Errorf("hooks[%s].signature: %w", h.ID, err)
			}
		}
	}
	return nil
}

// Package oci asks registries what they hold, with go-containerregistry (token auth, manifests):
// imagehook resolves a pushed tag before writing it, so a webhook that names a tag the registry
// does not have, or another digest, changes nothing.
package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/oci/ociconfig"
	"github.com/imagehook/imagehook/outbound"
)

// Errors callers branch on.
var (
	// ErrNoTag means the registry has no such tag: the push is not real (or not yet visible).
	ErrNoTag = errors.New("registry has no tag")
	// ErrDigestMismatch means the payload's digest is not the registry's for that tag.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrAuth means the registry refused imagehook's credentials.
	ErrAuth = errors.New("registry refused the credentials")
	// ErrNotConfigured means the image names a registry host config does not list: nothing is
	// asked of it (anyone who can commit an image reference could otherwise point imagehook at
	// a registry of their own).
	ErrNotConfigured = errors.New("not a configured registry")
	// ErrTagListTooLong means a tag list is longer than the host's caps (MaxTags, MaxTagBytes).
	ErrTagListTooLong = errors.New("tag list too long")
)

// Defaults of the tag-list caps, for a host that sets none (and for a hook's registryHost).
const (
	// DefaultMaxTags is the most tags one repository's list may hold.
	DefaultMaxTags = 100_000
	// DefaultMaxTagBytes is the most bytes of tag-list responses one listing reads, all pages
	// together: 100,000 tags of 80 characters.
	DefaultMaxTagBytes = 8 << 20
	// tagPageSize is how many tags each page asks for (the registry may send fewer).
	tagPageSize = 1000
)

// refusal is an error with the typed reason the event (or reconcile's log) carries.
type refusal struct {
	reason event.Reason
	err    error
}

func (e *refusal) Error() string             { return e.err.Error() }
func (e *refusal) Unwrap() error             { return e.err }
func (e *refusal) Reason() event.Reason      { return e.reason }
func refuse(r event.Reason, err error) error { return &refusal{reason: r, err: err} }

// Host is how to reach one registry host: a registries: entry of the config file, whose type
// lives in ociconfig so that package config need not import this client.
type Host = ociconfig.Registry

// Client resolves tags on the configured hosts, and asks no other host anything.
type Client struct {
	// mu serialises requests per host: one at a time, whatever asks (verify, reconcile).
	mu      sync.Mutex
	busy    map[string]*sync.Mutex
	hosts   map[string]Host
	aliases [][]string
	log     *slog.Logger
	timeout time.Duration
}

// New returns a client for hosts, the only hosts it asks; aliases group hosts that serve the same
// repositories, so that a host of a configured host's group is asked too, with its settings.
func New(hosts []Host, aliases [][]string, log *slog.Logger) *Client {
	c := &Client{hosts: map[string]Host{}, busy: map[string]*sync.Mutex{}, aliases: aliases, log: log, timeout: 30 * time.Second}
	for _, h := range hosts {
		if h.MaxTags <= 0 {
			h.MaxTags = DefaultMaxTags
		}
		if h.MaxTagBytes <= 0 {
			h.MaxTagBytes = DefaultMaxTagBytes
		}
		c.hosts[hostKey(h.Host)] = h
		if h.Insecure {
			log.Warn("registry reached over plain HTTP (insecure)", "host", h.Host)
		}
	}
	return c
}

// hostKey is how a host is looked up: go-containerregistry's name for it (docker.io is
// index.docker.io), lower case.
func hostKey(h string) string {
	if r, err := name.NewRegistry(h); err == nil {
		return strings.ToLower(r.RegistryStr())
	}
	return strings.ToLower(h)
}

// host returns the settings for a registry host, directly or through a host of its alias group
// (imageref's rule of which hosts serve the same repositories); ok is false for any other host.
func (c *Client) host(h string) (Host, bool) {
	if s, ok := c.hosts[hostKey(h)]; ok {
		return s, true
	}
	if len(c.aliases) > 0 {
		rules := imageref.Rules{RegistryAliases: c.aliases}
		names := make([]string, 0, len(c.hosts))
		for n := range c.hosts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if rules.SameRegistry(h, c.hosts[n].Host) {
				s := c.hosts[n]
				s.Host = h
				return s, true
			}
		}
	}
	return Host{Host: h}, false
}

// request prepares a request for a repository reference: its host's settings, one request at a
// time per host (the returned release must be called), and the options go-containerregistry takes.
// go-containerregistry retries 429 and 5xx answers with backoff. A host config does not list is
// refused before anything is sent (ErrNotConfigured). wrap, when set, wraps the transport.
func (c *Client) request(ctx context.Context, image string, tag bool, wrap func(Host, http.RoundTripper) http.RoundTripper) (name.Reference, name.Repository, []remote.Option, func(), error) {
	parse := func(opts ...name.Option) (name.Reference, name.Repository, error) {
		if tag {
			ref, err := name.ParseReference(image, opts...)
			if err != nil {
				return nil, name.Repository{}, err
			}
			return ref, ref.Context(), nil
		}
		repo, err := name.NewRepository(image, opts...)
		return nil, repo, err
	}
	ref, repo, err := parse()
	if err != nil {
		return nil, name.Repository{}, nil, nil, fmt.Errorf("%s: %w", image, err)
	}
	h, ok := c.host(repo.RegistryStr())
	if !ok {
		return nil, name.Repository{}, nil, nil, refuse(event.ReasonNotConfiguredRegistry,
			fmt.Errorf("%s: %w: %s is not in registries: nor any hook's registryHost, so imagehook asks it nothing", image, ErrNotConfigured, repo.RegistryStr()))
	}
	if h.Insecure {
		if ref, repo, err = parse(name.Insecure); err != nil {
			return nil, name.Repository{}, nil, nil, fmt.Errorf("%s: %w", image, err)
		}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("imagehook")}
	if h.Username != "" || h.Password != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: h.Username, Password: h.Password}))
	}
	var tr http.RoundTripper = remote.DefaultTransport
	if len(h.CABundle) > 0 {
		tr, _ = outbound.Transport(h.CABundle) // a file without certificates: the system's roots, as before
	}
	if wrap != nil {
		tr = wrap(h, tr)
	}
	if tr != remote.DefaultTransport {
		opts = append(opts, remote.WithTransport(tr))
	}
	c.mu.Lock()
	lock := c.busy[repo.RegistryStr()]
	if lock == nil {
		lock = &sync.Mutex{}
		c.busy[repo.RegistryStr()] = lock
	}
	c.mu.Unlock()
	lock.Lock()
	return ref, repo, opts, lock.Unlock, nil
}

// classify names what a registry's answer means.
func classify(err error, what string, registry string) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w %s", ErrNoTag, what)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w for %s (HTTP %d)", ErrAuth, registry, te.StatusCode)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Resolve returns the registry's digest for image (repository:tag). With want set, a different
// digest is ErrDigestMismatch.
func (c *Client) Resolve(ctx context.Context, image, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ref, repo, opts, release, err := c.request(ctx, image, true, nil)
	if err != nil {
		return "", fmt.Errorf("resolve %w", err)
	}
	defer release()
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return "", classify(err, ref.String(), repo.RegistryStr())
	}
	got := desc.Digest.String()
	if want != "" && want != got {
		return got, fmt.Errorf("%w: the webhook says %s, the registry has %s for %s", ErrDigestMismatch, want, got, ref)
	}
	return got, nil
}

// Tags lists a repository's tags, page by page, within the host's caps: past MaxTags tags or
// MaxTagBytes bytes of responses the listing stops with ErrTagListTooLong, having held no more
// than that in memory.
func (c *Client) Tags(ctx context.Context, repository string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
	defer cancel()
	var budget *tagBudget
	_, repo, opts, release, err := c.request(ctx, repository, false, func(h Host, base http.RoundTripper) http.RoundTripper {
		budget = &tagBudget{base: base, left: h.MaxTagBytes, limit: h.MaxTagBytes}
		return budget
	})
	if err != nil {
		return nil, fmt.Errorf("tags %w", err)
	}
	defer release()
	host, _ := c.host(repo.RegistryStr())
	tooLong := func(what string) error {
		return refuse(event.ReasonTagListTooLong, fmt.Errorf("tags of %s: %w: %s (registries[%s].maxTags %d, maxTagBytes %d)",
			repo, ErrTagListTooLong, what, host.Host, host.MaxTags, host.MaxTagBytes))
	}
	fail := func(err error) error {
		if budget.exceeded {
			return tooLong(fmt.Sprintf("more than %d bytes", budget.limit))
		}
		return classify(err, repo.String(), repo.RegistryStr())
	}
	puller, err := remote.NewPuller(append(opts, remote.WithPageSize(min(tagPageSize, host.MaxTags)))...)
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	lister, err := puller.Lister(ctx, repo)
	if err != nil {
		return nil, fail(err)
	}
	var tags []string
	for lister.HasNext() {
		page, err := lister.Next(ctx)
		if err != nil {
			return nil, fail(err)
		}
		if len(page.Tags) == 0 && page.Next != "" {
			// A page that brings nothing but a link to another could go on for ever.
			return nil, fmt.Errorf("tags of %s: an empty page links to another", repo)
		}
		if len(tags)+len(page.Tags) > host.MaxTags {
			return nil, tooLong(fmt.Sprintf("more than %d tags", host.MaxTags))
		}
		tags = append(tags, page.Tags...)
	}
	return tags, nil
}

// tagBudget caps the bytes of one listing's tag-list responses, all pages together: a registry that
// answers one page of millions of tags is cut off after limit bytes, before they are decoded.
type tagBudget struct {
	base        http.RoundTripper
	left, limit int64
	exceeded    bool
}

func (b *tagBudget) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/tags/list") {
		return resp, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, b: b}
	return resp, nil
}

// cappedBody is a response body that fails once its listing's budget is spent.
type cappedBody struct {
	io.ReadCloser
	b *tagBudget
}

func (c *cappedBody) Read(p []byte) (int, error) {
	// At most one byte past the budget is read: that byte says the budget is overrun, not full.
	if int64(len(p)) > c.b.left+1 {
		p = p[:c.b.left+1]
	}
	n, err := c.ReadCloser.Read(p)
	if int64(n) > c.b.left {
		within := int(c.b.left)
		c.b.left, c.b.exceeded = 0, true
		return within, ErrTagListTooLong
	}
	c.b.left -= int64(n)
	return n, err
}

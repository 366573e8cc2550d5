// Package oci asks registries what they hold, with go-containerregistry (token auth, manifests):
// imagehook resolves a pushed tag before writing it, so a webhook that names a tag the registry
// does not have, or another digest, changes nothing.
package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

	"github.com/imagehook/imagehook/imageref"
)

// Errors callers branch on.
var (
	// ErrNoTag means the registry has no such tag: the push is not real (or not yet visible).
	ErrNoTag = errors.New("registry has no tag")
	// ErrDigestMismatch means the payload's digest is not the registry's for that tag.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrAuth means the registry refused imagehook's credentials.
	ErrAuth = errors.New("registry refused the credentials")
)

// Host is how to reach one registry host.
type Host struct {
	Host               string
	Username, Password string
	CABundle           []byte
	Insecure           bool
}

// Client resolves tags on the configured hosts (anonymously elsewhere).
type Client struct {
	// mu serialises requests per host: one at a time, whatever asks (verify, reconcile).
	mu      sync.Mutex
	busy    map[string]*sync.Mutex
	hosts   map[string]Host
	aliases [][]string
	log     *slog.Logger
	timeout time.Duration
}

// New returns a client for hosts; aliases group hosts that serve the same repositories, so that
// credentials given for one apply to the others.
func New(hosts []Host, aliases [][]string, log *slog.Logger) *Client {
	c := &Client{hosts: map[string]Host{}, busy: map[string]*sync.Mutex{}, aliases: aliases, log: log, timeout: 30 * time.Second}
	for _, h := range hosts {
		c.hosts[strings.ToLower(h.Host)] = h
		if h.Insecure {
			log.Warn("registry reached over plain HTTP (insecure)", "host", h.Host)
		}
	}
	return c
}

// host returns the settings for a registry host, directly or through a host of its alias group
// (imageref's rule of which hosts serve the same repositories).
func (c *Client) host(h string) Host {
	if s, ok := c.hosts[strings.ToLower(h)]; ok {
		return s
	}
	if len(c.aliases) > 0 {
		rules := imageref.Rules{RegistryAliases: c.aliases}
		names := make([]string, 0, len(c.hosts))
		for n := range c.hosts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if rules.SameRegistry(h, n) {
				s := c.hosts[n]
				s.Host = h
				return s
			}
		}
	}
	return Host{Host: h}
}

// request prepares a request for a repository reference: its host's settings, one request at a
// time per host (the returned release must be called), and the options go-containerregistry takes.
// go-containerregistry retries 429 and 5xx answers with backoff.
func (c *Client) request(ctx context.Context, image string, tag bool) (name.Reference, name.Repository, []remote.Option, func(), error) {
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
	h := c.host(repo.RegistryStr())
	if h.Insecure {
		if ref, repo, err = parse(name.Insecure); err != nil {
			return nil, name.Repository{}, nil, nil, fmt.Errorf("%s: %w", image, err)
		}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("imagehook")}
	if h.Username != "" || h.Password != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: h.Username, Password: h.Password}))
	}
	if len(h.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(h.CABundle)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
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
	ref, repo, opts, release, err := c.request(ctx, image, true)
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

// Tags lists a repository's tags.
func (c *Client) Tags(ctx context.Context, repository string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
	defer cancel()
	_, repo, opts, release, err := c.request(ctx, repository, false)
	if err != nil {
		return nil, fmt.Errorf("tags %w", err)
	}
	defer release()
	tags, err := remote.List(repo, opts...)
	if err != nil {
		return nil, classify(err, repo.String(), repo.RegistryStr())
	}
	return tags, nil
}

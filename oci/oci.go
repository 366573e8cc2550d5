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
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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
	hosts   map[string]Host
	aliases [][]string
	log     *slog.Logger
	timeout time.Duration
}

// New returns a client for hosts; aliases group hosts that serve the same repositories, so that
// credentials given for one apply to the others.
func New(hosts []Host, aliases [][]string, log *slog.Logger) *Client {
	c := &Client{hosts: map[string]Host{}, aliases: aliases, log: log, timeout: 30 * time.Second}
	for _, h := range hosts {
		c.hosts[strings.ToLower(h.Host)] = h
		if h.Insecure {
			log.Warn("registry reached over plain HTTP (insecure)", "host", h.Host)
		}
	}
	return c
}

// host returns the settings for a registry host, directly or through an alias group.
func (c *Client) host(h string) Host {
	if s, ok := c.hosts[strings.ToLower(h)]; ok {
		return s
	}
	for _, group := range c.aliases {
		in := false
		for _, g := range group {
			in = in || strings.EqualFold(g, h)
		}
		if !in {
			continue
		}
		for _, g := range group {
			if s, ok := c.hosts[strings.ToLower(g)]; ok {
				s.Host = h
				return s
			}
		}
	}
	return Host{Host: h}
}

// Resolve returns the registry's digest for image (repository:tag). With want set, a different
// digest is ErrDigestMismatch.
func (c *Client) Resolve(ctx context.Context, image, want string) (string, error) {
	ref, err := name.ParseReference(image, name.StrictValidation)
	if err != nil {
		if ref, err = name.ParseReference(image); err != nil {
			return "", fmt.Errorf("resolve %s: %w", image, err)
		}
	}
	h := c.host(ref.Context().RegistryStr())
	if h.Insecure {
		if ref, err = name.ParseReference(image, name.Insecure); err != nil {
			return "", fmt.Errorf("resolve %s: %w", image, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
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
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) {
			switch te.StatusCode {
			case http.StatusNotFound:
				return "", fmt.Errorf("%w %s", ErrNoTag, ref)
			case http.StatusUnauthorized, http.StatusForbidden:
				return "", fmt.Errorf("%w for %s (HTTP %d)", ErrAuth, ref.Context().RegistryStr(), te.StatusCode)
			}
		}
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	got := desc.Digest.String()
	if want != "" && want != got {
		return got, fmt.Errorf("%w: the webhook says %s, the registry has %s for %s", ErrDigestMismatch, want, got, ref)
	}
	return got, nil
}

// Package outbound is the one HTTP client policy for imagehook's calls to other services: chat
// robots, forges' APIs and generic webhooks. Their URLs and headers carry credentials (a robot's
// access token in its query, a signature, a forge token), so a redirect must never carry them to
// another host, and no request names the URL it came from. It also holds the one rule for a
// configured CA file (CertPool, Transport), which the mail server's TLS uses too.
package outbound

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrRedirectToOtherHost is returned for a redirect that leaves the host the request was sent to.
var ErrRedirectToOtherHost = errors.New("redirect to another host refused")

// maxRedirects bounds the redirects followed on the same host.
const maxRedirects = 5

// Client returns a client with the policy: timeout bounds each request whole; transport may be
// nil (the default transport).
func Client(timeout time.Duration, transport http.RoundTripper) *http.Client {
	return &http.Client{Timeout: timeout, Transport: transport, CheckRedirect: CheckRedirect}
}

// CheckRedirect follows a redirect only on the scheme and host of the first request, and sends no
// Referer: Go would otherwise re-send a robot's body and signature to whatever host a hostile or
// misconfigured endpoint names, with the full original URL (its token) as the Referer.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("%w: %s to %s", ErrRedirectToOtherHost, first.Host, req.URL.Host)
	}
	req.Header.Del("Referer")
	return nil
}

package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
)

// ErrNoCertificate is returned for a CA file that holds no PEM certificate.
var ErrNoCertificate = errors.New("no PEM certificate found")

// CertPool is the one rule for a configured CA file (a registry's, a repository's, the mail
// server's): the system's roots and the file's certificates, both trusted. When the file holds no
// certificate the pool is the system's roots alone and the error is ErrNoCertificate.
func CertPool(pem []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return pool, ErrNoCertificate
	}
	return pool, nil
}

// Transport is a copy of http.DefaultTransport that trusts CertPool(pem), TLS 1.2 at least. Its
// error is CertPool's; the transport is usable either way.
func Transport(pem []byte) (*http.Transport, error) {
	pool, err := CertPool(pem)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, err
}

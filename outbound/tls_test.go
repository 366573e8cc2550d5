package outbound

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"encoding/pem"
)

// TestTransport: a transport built from a server's CA file reaches that server (its certificate
// signed by nothing the system trusts), one built without it does not, and a file without a
// certificate is said with ErrNoCertificate while the transport still trusts the system's roots.
func TestTransport(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	tr, err := Transport(ca)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Client(5*time.Second, tr).Get(srv.URL)
	if err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	resp.Body.Close()

	tr, err = Transport([]byte("not a certificate"))
	if !errors.Is(err, ErrNoCertificate) || tr == nil {
		t.Fatalf("Transport(no PEM) = %v, %v; want a transport and ErrNoCertificate", tr, err)
	}
	if resp, err := Client(5*time.Second, tr).Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("a transport without the CA file reached the server")
	}
	if _, err := CertPool(nil); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("CertPool(nil) error = %v, want ErrNoCertificate", err)
	}
}

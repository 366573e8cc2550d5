// Package smtptest runs a real go-smtp server in-process for tests: implicit TLS, STARTTLS or
// plain, AUTH PLAIN and LOGIN, a certificate from a test CA, and failures on demand.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The credentials the server accepts.
const (
	User     = "bot@example.com"
	Password = "smtp-secret-pw"
)

// TestCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func TestCA(t testing.TB) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imagehook test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Options chooses the server's transport and mechanisms.
type Options struct {
	ImplicitTLS bool
	StartTLS    bool
	LoginOnly   bool
}

// Server records what it receives.
type Server struct {
	Port int

	mu       sync.Mutex
	messages [][]byte
	rcpts    [][]string
	authed   []string
	failData []int
	opts     Options
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB, o Options, cert tls.Certificate) *Server {
	t.Helper()
	srv := &Server{opts: o}
	s := smtp.NewServer(srv)
	s.Domain = "localhost"
	s.AllowInsecureAuth = !o.ImplicitTLS && !o.StartTLS
	s.ReadTimeout, s.WriteTimeout = 5*time.Second, 5*time.Second
	var ln net.Listener
	var err error
	if o.ImplicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if o.StartTLS {
			s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	srv.Port = ln.Addr().(*net.TCPAddr).Port
	return srv
}

// FailData makes the next deliveries' DATA fail with these codes, one each.
func (s *Server) FailData(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failData = append(s.failData, codes...)
}

// PendingFailures returns how many planned failures were not used.
func (s *Server) PendingFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.failData)
}

// Messages returns the accepted messages and their envelope recipients.
func (s *Server) Messages() ([][]byte, [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.messages...), append([][]string(nil), s.rcpts...)
}

// Authed returns the mechanisms of the successful authentications.
func (s *Server) Authed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authed...)
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{srv: s}, nil }

type session struct {
	srv   *Server
	rcpts []string
}

func (s *session) AuthMechanisms() []string {
	if s.srv.opts.LoginOnly {
		return []string{sasl.Login}
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(u, p string) error {
		if u != User || p != Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.srv.mu.Lock()
		s.srv.authed = append(s.srv.authed, mech)
		s.srv.mu.Unlock()
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, u, p string) error { return check(u, p) }), nil
}

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if len(s.srv.failData) > 0 {
		code := s.srv.failData[0]
		s.srv.failData = s.srv.failData[1:]
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "planned failure " + strconv.Itoa(code)}
	}
	s.srv.messages = append(s.srv.messages, data)
	s.srv.rcpts = append(s.srv.rcpts, s.rcpts)
	return nil
}

func (s *session) Reset()        { s.rcpts = nil }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl does not provide.
type loginServer struct {
	check    func(u, p string) error
	step     int
	username string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(resp) > 0 {
			l.username = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(resp)
		l.step++
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.username, string(resp))
}

package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCertPEM is a self-signed CA certificate in PEM, as a company CA file holds one.
func testCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestCAFileMustHoldACertificate: a caFile without a PEM certificate (a key, a DER file, a typo'd
// path to a notes file) is a config error naming its key. Before, git and registries quietly used
// the system's roots alone, and only mail said so, at its first connection.
func TestCAFileMustHoldACertificate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, bad := write("ca.pem", testCertPEM(t)), write("notes.txt", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n")
	section := map[string]func(file string) string{
		"repos[apps].auth.caFile": func(f string) string {
			return "repos: [{name: apps, url: https://git.example.com/apps.git, auth: {caFile: " + f + "}}]\n"
		},
		"mail.caFile": func(f string) string {
			return "repos: [{name: apps, url: file:///x}]\nmail: {host: smtp.example.com, from: bot@example.com, caFile: " + f + "}\n"
		},
		"registries[0].caFile": func(f string) string {
			return "repos: [{name: apps, url: file:///x}]\nregistries: [{host: registry.example.com, caFile: " + f + "}]\n"
		},
	}
	for key, yml := range section {
		t.Run(key, func(t *testing.T) {
			if _, err := Parse([]byte(yml(good)), env(nil)); err != nil {
				t.Errorf("a CA file with a certificate: %v", err)
			}
			_, err := Parse([]byte(yml(bad)), env(nil))
			if err == nil || !strings.Contains(err.Error(), "no PEM certificate found") || !strings.Contains(err.Error(), "caFile") {
				t.Errorf("a CA file without a certificate: err = %v, want one naming the key and saying no PEM certificate found", err)
			}
		})
	}
}

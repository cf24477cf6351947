package acmecert

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

func TestParseConfig(t *testing.T) {
	roots := filepath.Join(t.TempDir(), "roots.pem")
	// A real PEM certificate is needed; any self-signed one does.
	if err := os.WriteFile(roots, testRootPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, json, wantErr string
	}{
		{"minimal", `{"domains":["api.example.com"]}`, ""},
		{"no domains", `{"email":"ops@example.com"}`, "tls.acme.domains: is required"},
		{"wildcard with http-01", `{"domains":["*.example.com"],"challenge":"http-01","http_listen":":80"}`, "tls.acme.domains[0]: \"*.example.com\": a wildcard cannot be proven over http-01"},
		{"wildcard with tls-alpn-01", `{"domains":["*.example.com"]}`, "a wildcard cannot be proven over tls-alpn-01"},
		{"single label", `{"domains":["localhost"]}`, "at least two labels"},
		{"ip address", `{"domains":["127.0.0.1"]}`, "an IP address"},
		{"bad character", `{"domains":["api_1.example.com"]}`, `label "api_1"`},
		{"leading hyphen", `{"domains":["-api.example.com"]}`, `label "-api"`},
		{"empty label", `{"domains":["api..example.com"]}`, `label ""`},
		{"duplicate", `{"domains":["api.example.com","API.example.com"]}`, "tls.acme.domains[1]: \"API.example.com\" is listed twice"},
		{"bad email", `{"domains":["api.example.com"],"email":"Ops <ops@example.com>"}`, "tls.acme.email"},
		{"unknown challenge", `{"domains":["api.example.com"],"challenge":"dns-01"}`, "tls.acme.challenge: expected"},
		{"http-01 without http_listen", `{"domains":["api.example.com"],"challenge":"http-01"}`, "tls.acme.http_listen: is required"},
		{"http directory", `{"domains":["api.example.com"],"directory_url":"http://acme.internal/dir"}`, "tls.acme.directory_url: \"http://acme.internal/dir\" is plain http"},
		{"http directory of a private CA", `{"domains":["api.example.com"],"directory_url":"http://acme.internal/dir","ca_roots_file":"` + roots + `"}`, ""},
		{"not a URL", `{"domains":["api.example.com"],"directory_url":"acme.internal"}`, "tls.acme.directory_url: expected an https URL"},
		{"roots file missing", `{"domains":["api.example.com"],"ca_roots_file":"/nonexistent.pem"}`, "tls.acme.ca_roots_file"},
		{"renew_before too short", `{"domains":["api.example.com"],"renew_before":"30s"}`, "tls.acme.renew_before: must be at least 1m0s"},
		{"renew_before too long", `{"domains":["api.example.com"],"renew_before":"1000h"}`, "tls.acme.renew_before: at most 720h0m0s"},
		{"unknown field", `{"domains":["api.example.com"],"domain":"x"}`, "tls.acme"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("tls.acme", []byte(tc.json))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("tls.acme", []byte(`{"domains":["API.Example.com"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Challenge != ChallengeTLSALPN || c.RenewBefore != 30*24*time.Hour ||
		c.DirectoryURL != "https://acme-v02.api.letsencrypt.org/directory" || c.Domains[0] != "api.example.com" {
		t.Errorf("defaults: %+v", c)
	}
}

// testRootPEM is a freshly made self-signed certificate.
func testRootPEM(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

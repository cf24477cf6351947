package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a
// pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: with "tls" the server speaks HTTPS itself, its issuer and
// endpoints are https, and its cookies are __Host- and Secure.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := fmt.Sprintf(`{
  "tls": {"cert_file": %q, "key_file": %q},
  "clients": [{"client_id": "svc", "client_secret": "svc-dev-secret-0123456789", "grant_types": ["client_credentials"], "scope": "read"}],
  "users": [{"username": "alice", "password": "alice-password"}]
}`, certFile, keyFile)
	srv := startServer(t, writeConfig(t, cfg), "")
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s, want https", srv.URL)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	cc := &clientcredentials.Config{ClientID: "svc", ClientSecret: "svc-dev-secret-0123456789", TokenURL: srv.URL + "/oauth2/token"}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("token over TLS: %v", err)
	}
	resp, err := client.Get(srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc["issuer"] != srv.URL || doc["token_endpoint"] != srv.URL+"/oauth2/token" {
		t.Errorf("discovery over TLS: issuer %v, token_endpoint %v", doc["issuer"], doc["token_endpoint"])
	}
	resp, err = client.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "postern_csrf") {
			csrf = c
		}
	}
	if csrf == nil || csrf.Name != "__Host-postern_csrf" || !csrf.Secure || csrf.Path != "/" {
		t.Errorf("CSRF cookie over https = %+v, want __Host-, Secure, Path=/", csrf)
	}
	// Plain HTTP on the TLS port is refused, not served.
	if r, err := http.Get(strings.Replace(srv.URL, "https://", "http://", 1) + "/healthz"); err == nil && r.StatusCode == http.StatusOK {
		t.Error("plain http answered 200 on the TLS listener")
	}
}

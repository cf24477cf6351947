package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGatewayUpstreams: basic auth and mutual TLS toward backends, and the
// answers for a backend that is down (502) or too slow (504).
func TestGatewayUpstreams(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	pki := newTestPKI(t)

	basic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "gateway" || p != "backend-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"client": r.Header.Get("X-Authenticated-Client-Id")})
	}))
	defer basic.Close()

	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"peer": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	mtls.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	mtls.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point of one route
	mtls.StartTLS()
	defer mtls.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the gateway gives up first
	}))
	defer slow.Close()
	dead := "http://" + gwFreeAddr(t) // nothing listens there

	routes := []any{
		map[string]any{"path_prefix": "/basic", "upstream": basic.URL, "upstream_auth": map[string]any{
			"basic": map[string]any{"username": "gateway", "password": "${BACKEND_PW}"}}},
		map[string]any{"path_prefix": "/mtls", "upstream": mtls.URL, "public": true, "upstream_auth": map[string]any{
			"tls": map[string]any{"cert_file": pki.clientCert, "key_file": pki.clientKey, "ca_file": pki.caFile}}},
		map[string]any{"path_prefix": "/no-client-cert", "upstream": mtls.URL, "public": true, "upstream_auth": map[string]any{
			"tls": map[string]any{"ca_file": pki.caFile}}},
		map[string]any{"path_prefix": "/dead", "upstream": dead, "public": true},
		map[string]any{"path_prefix": "/slow", "upstream": slow.URL, "public": true, "timeout": "300ms"},
	}
	cfg := f.gatewayConfig(t, basic.URL, func(c map[string]any) { c["routes"] = routes })
	gw := startGateway(t, cfg, f.gatewayEnv(), "BACKEND_PW=backend-pw")

	resp, body := gwGet(t, gw.URL+"/basic/x", f.token(t, "billing"), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"client":"billing"`) {
		t.Errorf("upstream basic auth: %d %s", resp.StatusCode, body)
	}
	resp, body = gwGet(t, gw.URL+"/mtls/x", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"peer":"postern-gateway"`) {
		t.Errorf("mutual TLS: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		path   string
		status int
	}{{"/no-client-cert/x", 502}, {"/dead/x", 502}, {"/slow/x", 504}} {
		resp, body := gwGet(t, gw.URL+c.path, "", nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d: %s", c.path, resp.StatusCode, c.status, body)
		}
		if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "tls") {
			t.Errorf("%s: error body leaks internals: %s", c.path, body)
		}
	}
}

func TestGatewayConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, config, want string
	}{
		{"bad upstream", `{"routes": [{"path_prefix": "/a", "upstream": "http://x", "public": true}, {"path_prefix": "/b", "upstream": "b:80", "public": true}]}`,
			`config: routes[1].upstream: expected an absolute http(s) URL, got "b:80"`},
		{"unknown field", `{"routes": [], "cache": {"ttl": "1s", "size": 3}}`, `config: cache: unknown field "size"`},
		{"missing secret", `{"issuer": "http://127.0.0.1:1", "client_id": "gw", "client_secret": "${NOT_SET_ANYWHERE}", "routes": [{"path_prefix": "/a", "upstream": "http://x"}]}`,
			"config: client_secret: environment variable NOT_SET_ANYWHERE is not set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := runPostern(t, "", "gateway", "--config", writeConfig(t, c.config))
			if code != 2 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, c.want)
			}
		})
	}
	if _, _, code := runPostern(t, "", "gateway"); code != 2 {
		t.Errorf("no --config: exit %d, want 2", code)
	}
}

// testPKI is a CA made for the test, a server certificate for 127.0.0.1
// and a client certificate for the gateway.
type testPKI struct {
	pool                          *x509.CertPool
	server                        tls.Certificate
	caFile, clientCert, clientKey string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := genKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postern test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		k := genKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	sc, sk := issue("127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	if p.server, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	cc, ck := issue("postern-gateway", x509.ExtKeyUsageClientAuth, nil)
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.clientCert, p.clientKey = write("client.pem", cc), write("client-key.pem", ck)
	return p
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

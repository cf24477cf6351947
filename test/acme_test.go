package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern-auth/postern/acmecert/acmetest"
)

const acmeDomain = "auth.postern.test"

// acmeBlock is a tls.acme block for Pebble.
func acmeBlock(peb *acmetest.Pebble, challenge string, httpPort int) map[string]any {
	b := map[string]any{"domains": []string{acmeDomain}, "email": "ops@postern.test",
		"directory_url": peb.DirectoryURL, "ca_roots_file": peb.CARootsFile, "challenge": challenge}
	if challenge == "http-01" {
		b["http_listen"] = fmt.Sprintf("127.0.0.1:%d", httpPort)
	}
	return b
}

// acmeClient trusts Pebble's root and reaches every name on 127.0.0.1,
// as a client would through DNS.
func acmeClient(peb *acmetest.Pebble) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: peb.Roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return d.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
}

// servedSerial connects for acmeDomain and verifies chain and name.
func servedSerial(t *testing.T, peb *acmetest.Pebble, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leaf, err := peb.Served(ctx, addr, acmeDomain)
	if err != nil {
		t.Fatalf("TLS handshake for %s at %s: %v", acmeDomain, addr, err)
	}
	return leaf.SerialNumber.Text(16)
}

func getBody(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeJSONConfig(t *testing.T, cfg map[string]any) string {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, string(b))
}

// checkACMERestart starts a process on tlsPort and checks it serves
// Pebble's certificate (chain and name verified) with /healthz healthy and
// its expiry reported, then that a restart serves the same certificate
// without a new order: it reuses kept, where the process keeps it.
func checkACMERestart(t *testing.T, peb *acmetest.Pebble, tlsPort int, start func() *gwProc, kept string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	p := start()
	first := servedSerial(t, peb, addr)
	if code, _ := getBody(t, acmeClient(peb), fmt.Sprintf("https://%s:%d/healthz", acmeDomain, tlsPort)); code != http.StatusOK {
		t.Errorf("/healthz over ACME TLS: %d", code)
	}
	want := fmt.Sprintf(`postern_acme_certificate_expiry_timestamp_seconds{domain=%q}`, acmeDomain)
	gwEventually(t, 90*time.Second, "expiry metric", func() bool {
		_, body := getBody(t, http.DefaultClient, p.AdminURL+"/metrics")
		return strings.Contains(body, want)
	})
	p.Stop()

	p = start()
	if again := servedSerial(t, peb, addr); again != first {
		t.Errorf("after a restart: serial %s, before %s", again, first)
	}
	if o := peb.Orders(); o != 1 {
		t.Errorf("pebble got %d orders, want 1: the restart must reuse %s", o, kept)
	}
	p.Stop()
}

// postern serve gets its certificate from Pebble over each challenge,
// serves it (chain and name verified), reports its expiry, keeps /healthz
// healthy, and after a restart serves the same certificate without a new
// order: it is in the store (bbolt here).
func TestServeACME(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			tlsPort, httpPort := acmetest.FreePort(t), acmetest.FreePort(t)
			peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: httpPort})
			addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
			base := fmt.Sprintf("https://%s:%d", acmeDomain, tlsPort)
			config := writeJSONConfig(t, map[string]any{
				"addr": addr, "issuer": base, "admin_listen": "127.0.0.1:0",
				"tls": map[string]any{"acme": acmeBlock(peb, challenge, httpPort)},
				"clients": []any{map[string]any{"client_id": "svc", "client_secret": "svc-dev-secret-0123456789",
					"grant_types": []string{"client_credentials"}, "scope": "read"}},
			})
			data := t.TempDir()
			start := func() *gwProc {
				return startGWProc(t, "server", binary, []string{"serve", "--config", config, "--data", data, "--log-level", "debug"},
					[]string{"POSTERN_SECRET=acme-test-secret-0123456789-0123456789"}, true)
			}
			checkACMERestart(t, peb, tlsPort, start, "the stored certificate")
		})
	}
}

// postern gateway does the same with its certificate in data_dir.
func TestGatewayACME(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			tlsPort, httpPort := acmetest.FreePort(t), acmetest.FreePort(t)
			peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: httpPort})
			addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
			config := writeJSONConfig(t, map[string]any{
				"listen": addr, "admin_listen": "127.0.0.1:0", "data_dir": t.TempDir(),
				"tls":    map[string]any{"acme": acmeBlock(peb, challenge, httpPort)},
				"issuer": "https://auth.postern.test:1", "client_id": "gateway", "client_secret": "unused-in-this-test",
				"routes": []any{map[string]any{"path_prefix": "/status", "upstream": "http://127.0.0.1:1", "public": true}},
			})
			start := func() *gwProc {
				return startGWProc(t, "gateway", binary, []string{"gateway", "--config", config, "--log-level", "debug"}, nil, true)
			}
			checkACMERestart(t, peb, tlsPort, start, "data_dir's certificate")
		})
	}
}

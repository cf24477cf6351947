package acmecert_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/postern-auth/postern/acmecert"
	"github.com/postern-auth/postern/acmecert/acmetest"
)

const testDomain = "auth.postern.test"

// site is a TLS listener (and an http_listen one for http-01) served by a
// manager, as the commands wire it.
type site struct {
	tlsAddr string
	m       *acmecert.Manager
	logs    *syncBuilder
	stop    func()
}

func startSite(t *testing.T, peb *acmetest.Pebble, tlsPort, httpPort int, challenge string, cache autocert.Cache) *site {
	return startSiteWith(t, peb, tlsPort, httpPort, challenge, "", cache)
}

func startSiteRenew(t *testing.T, peb *acmetest.Pebble, tlsPort int, renewBefore string, cache autocert.Cache) *site {
	return startSiteWith(t, peb, tlsPort, 0, acmecert.ChallengeTLSALPN, renewBefore, cache)
}

func startSiteWith(t *testing.T, peb *acmetest.Pebble, tlsPort, httpPort int, challenge, renewBefore string, cache autocert.Cache) *site {
	t.Helper()
	block := map[string]any{"domains": []string{testDomain, "api.postern.test"}, "directory_url": peb.DirectoryURL,
		"ca_roots_file": peb.CARootsFile, "challenge": challenge}
	if renewBefore != "" {
		block["renew_before"] = renewBefore
	}
	if httpPort != 0 {
		block["http_listen"] = fmt.Sprintf("127.0.0.1:%d", httpPort)
	}
	raw, _ := json.Marshal(block)
	cfg, err := acmecert.ParseConfig("tls.acme", raw)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuilder{}
	m, err := acmecert.New(cfg, acmecert.Options{Cache: cache, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	servers := []*http.Server{{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello") })}}
	go func() { _ = servers[0].Serve(ln) }()
	if httpPort != 0 {
		hln, err := net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, &http.Server{Handler: m.HTTPHandler()})
		go func() { _ = servers[1].Serve(hln) }()
	}
	stop := func() {
		for _, hs := range servers {
			_ = hs.Close()
		}
	}
	t.Cleanup(stop)
	return &site{tlsAddr: ln.Addr().String(), m: m, logs: logs, stop: stop}
}

// syncBuilder is a strings.Builder the manager's goroutines may log to.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With tls-alpn-01 nothing listens on Pebble's http-01 port, so a
// certificate proves the TLS listener answered the challenge.
func TestObtainTLSALPN(t *testing.T) {
	tlsPort := acmetest.FreePort(t)
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: acmetest.FreePort(t)})
	s := startSite(t, peb, tlsPort, 0, acmecert.ChallengeTLSALPN, autocert.DirCache(t.TempDir()))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leaf, err := peb.Served(ctx, s.tlsAddr, testDomain)
	if err != nil {
		t.Fatalf("handshake for %s: %v\n%s", testDomain, err, s.logs)
	}
	if err := leaf.VerifyHostname(testDomain); err != nil {
		t.Error(err)
	}
	if n := peb.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
}

// With http-01 the TLS listener refuses acme-tls/1, so a certificate
// proves the http_listen listener answered the challenge; autocert would
// have tried tls-alpn-01 first without the transport's filter.
func TestObtainHTTP01(t *testing.T) {
	tlsPort, httpPort := acmetest.FreePort(t), acmetest.FreePort(t)
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: httpPort})
	s := startSite(t, peb, tlsPort, httpPort, acmecert.ChallengeHTTP, autocert.DirCache(t.TempDir()))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := peb.Served(ctx, s.tlsAddr, testDomain); err != nil {
		t.Fatalf("handshake for %s: %v\n%s", testDomain, err, s.logs)
	}
	if n, o := peb.Issued(), peb.Orders(); n != 1 || o != 1 {
		t.Errorf("pebble: %d orders, %d certificates; want 1 and 1 (no failed tls-alpn-01 attempt first)", o, n)
	}
	// Everything but the challenge path goes to https.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/token?x=1", httpPort), nil)
	req.Host = testDomain
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://"+testDomain+"/token?x=1" {
		t.Errorf("http_listen answered %d Location %q, want a redirect to https", resp.StatusCode, loc)
	}
}

// A name outside domains is refused at the handshake; nothing is ordered.
func TestOtherNameRefused(t *testing.T) {
	tlsPort := acmetest.FreePort(t)
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: acmetest.FreePort(t)})
	s := startSite(t, peb, tlsPort, 0, acmecert.ChallengeTLSALPN, autocert.DirCache(t.TempDir()))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, name := range []string{"evil.postern.test", "postern.test", "auth.postern.test.evil.test"} {
		if _, err := peb.Served(ctx, s.tlsAddr, name); err == nil {
			t.Errorf("handshake for %s succeeded", name)
		}
	}
	if o := peb.Orders(); o != 0 {
		t.Errorf("pebble got %d orders for names outside domains", o)
	}
}

package test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGatewayIdentityHeaders: a client-credentials token through the
// gateway reaches the example echo backend with the identity headers and
// Forwarded as the client saw the request; whatever the client claimed
// itself is gone.
func TestGatewayIdentityHeaders(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, nil)
	gwPort := gw.URL[strings.LastIndexByte(gw.URL, ':')+1:]
	tok := f.token(t, "billing")

	resp, body := gwGet(t, gw.URL+"/search/v1/query?q=tax", tok, map[string]string{
		"X-Authenticated-Userid":    "mallory",
		"X_Authenticated_Userid":    "mallory",
		"x-authenticated-scope":     "admin",
		"X-Authenticated-Client-Id": "mallory",
		"Forwarded":                 "for=6.6.6.6;proto=https;host=evil.example",
		"X-Forwarded-For":           "6.6.6.6",
		"X-Forwarded-Host":          "evil.example",
		"X-Forwarded-Proto":         "https",
		"Connection":                "X-Authenticated-Client-Id",
	})
	seen := decodeSeen(t, resp, body)
	if seen.Path != "/query" || seen.RawQuery != "q=tax" {
		t.Errorf("backend got %s?%s, want /query?q=tax (prefix stripped)", seen.Path, seen.RawQuery)
	}
	if seen.ClientID != "billing" || seen.Scope != "read write" || seen.UserID != "" {
		t.Errorf("identity = client %q scope %q user %q; want billing, read write, no user", seen.ClientID, seen.Scope, seen.UserID)
	}
	wantFwd := "proto=http;host=127.0.0.1;port=" + gwPort + ";prefix=/search/v1"
	if seen.Forwarded != wantFwd {
		t.Errorf("Forwarded = %q, want %q", seen.Forwarded, wantFwd)
	}
	if want := gw.URL + "/search/v1/query?q=tax"; seen.PublicURL != want {
		t.Errorf("backend rebuilt public URL %q, want %q", seen.PublicURL, want)
	}
	for _, h := range []string{"authorization", "x-authenticated-userid", "x_authenticated_userid", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"} {
		if v, ok := seen.Headers[h]; ok {
			t.Errorf("backend received %s: %q", h, v)
		}
	}
	if v := seen.Headers["x-authenticated-client-id"]; v != "billing" {
		t.Errorf("X-Authenticated-Client-Id = %q (a client-listed Connection header must not remove it)", v)
	}

	// Without public_url: bare challenge with the default realm.
	resp, _ = gwGet(t, gw.URL+"/search/v1/query", "", nil)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="postern"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	gw.Stop() // graceful: exit status 0
}

func TestGatewayForwarded(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	tok := f.token(t, "billing")
	public := f.startGateway(t, backend.URL, func(c map[string]any) { c["public_url"] = "https://api.example.com" })
	publicPort := f.startGateway(t, backend.URL, func(c map[string]any) { c["public_url"] = "https://api.example.com:8443" })
	behindProxy := f.startGateway(t, backend.URL, func(c map[string]any) { c["trusted_proxies"] = []string{"127.0.0.1/32"} })

	tests := []struct {
		name string
		gw   *gwProc
		hdr  map[string]string
		want string
	}{
		{"public_url, default port", public, map[string]string{"X-Forwarded-Host": "evil.example"},
			"proto=https;host=api.example.com;prefix=/search/v1"},
		{"public_url, non-default port", publicPort, nil,
			"proto=https;host=api.example.com;port=8443;prefix=/search/v1"},
		{"trusted front proxy, X-Forwarded-*", behindProxy, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"},
			"proto=https;host=api.example.com;prefix=/search/v1"},
		{"trusted front proxy, non-default port", behindProxy, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com:8443"},
			"proto=https;host=api.example.com;port=8443;prefix=/search/v1"},
		{"trusted front proxy that removed a prefix", behindProxy, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Prefix": "/api"},
			"proto=https;host=api.example.com;prefix=/api/search/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := gwSeen(t, tt.gw.URL+"/search/v1/items/7", tok, tt.hdr)
			if seen.Forwarded != tt.want {
				t.Errorf("Forwarded = %q\n          want %q", seen.Forwarded, tt.want)
			}
		})
	}
	// No strip_prefix: no prefix=.
	seen := gwSeen(t, public.URL+"/billing/invoices", tok, nil)
	if seen.Forwarded != "proto=https;host=api.example.com" || seen.Path != "/billing/invoices" {
		t.Errorf("route without strip_prefix: Forwarded %q, path %q", seen.Forwarded, seen.Path)
	}
	resp, _ := gwGet(t, public.URL+"/billing/invoices", "", nil)
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="api.example.com"` {
		t.Errorf("challenge = %q", got)
	}
}

// TestGatewayForwardedHeader: forwarded_header names the one header family
// the trusted proxy overwrites; the other family is the client's, passed
// through by the proxy, and counts for nothing: not for the Forwarded the
// backend gets, not for the address public routes are rate limited by.
func TestGatewayForwardedHeader(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	tok := f.token(t, "billing")
	mod := func(header string) func(map[string]any) {
		return func(c map[string]any) {
			c["trusted_proxies"] = []string{"127.0.0.1/32"}
			if header != "" {
				c["forwarded_header"] = header
			}
			c["tiers"] = map[string]any{"ip": map[string]any{"requests": 2, "per": "1h"}}
			c["routes"].([]any)[2].(map[string]any)["tier"] = "ip"
		}
	}
	xf := f.startGateway(t, backend.URL, mod("")) // x-forwarded, the default
	rfc := f.startGateway(t, backend.URL, mod("forwarded"))
	xfPort := xf.URL[strings.LastIndexByte(xf.URL, ':')+1:]
	rfcPort := rfc.URL[strings.LastIndexByte(rfc.URL, ':')+1:]

	both := map[string]string{
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "xf.example.com", "X-Forwarded-Prefix": "/xf",
		"Forwarded": `for=192.0.2.60;proto=https;host=rfc.example.com;prefix=/rfc`,
	}
	tests := []struct {
		name string
		gw   *gwProc
		hdr  map[string]string
		want string
	}{
		{"x-forwarded, both families", xf, both, "proto=https;host=xf.example.com;prefix=/xf/search/v1"},
		{"x-forwarded, only a client Forwarded", xf, map[string]string{"Forwarded": both["Forwarded"]},
			"proto=http;host=127.0.0.1;port=" + xfPort + ";prefix=/search/v1"},
		{"forwarded, both families", rfc, both, "proto=https;host=rfc.example.com;prefix=/rfc/search/v1"},
		{"forwarded, only client X-Forwarded-*", rfc, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "xf.example.com"},
			"proto=http;host=127.0.0.1;port=" + rfcPort + ";prefix=/search/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := gwSeen(t, tt.gw.URL+"/search/v1/items/7", tok, tt.hdr)
			if seen.Forwarded != tt.want {
				t.Errorf("Forwarded = %q\n          want %q", seen.Forwarded, tt.want)
			}
		})
	}

	// A public route's per-address bucket: a fresh address in the other
	// family each time buys nothing.
	for _, c := range []struct {
		gw                  *gwProc
		real, value, forged string
	}{
		{xf, "X-Forwarded-For", "192.0.2.7", "Forwarded"},
		{rfc, "Forwarded", "for=192.0.2.7", "X-Forwarded-For"},
	} {
		for i, want := range []int{200, 200, 429} {
			forged := fmt.Sprintf("198.51.100.%d", i)
			if c.forged == "Forwarded" {
				forged = "for=" + forged
			}
			resp, _ := gwGet(t, c.gw.URL+"/status/ping", "", map[string]string{c.real: c.value, c.forged: forged})
			if resp.StatusCode != want {
				t.Errorf("%s %s, forged %s, request %d: status %d, want %d", c.real, c.value, c.forged, i, resp.StatusCode, want)
			}
		}
	}
}

// gwStatus sends one request and returns the status and challenge.
func gwStatus(t *testing.T, u, token string) (int, string) {
	t.Helper()
	resp, _ := gwGet(t, u, token, nil)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestGatewayRejections(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) { c["public_url"] = "https://api.example.com" })
	readOnly := f.token(t, "billing", "read")
	const realm = `Bearer realm="api.example.com"`

	tests := []struct {
		name, path, token string
		status            int
		challenge         string
	}{
		{"no token", "/search/v1/x", "", 401, realm},
		{"token in the query string only", "/search/v1/x?access_token=" + url.QueryEscape(readOnly), "", 401, realm},
		{"garbage token", "/search/v1/x", "garbage-token", 401, realm + `, error="invalid_token"`},
		{"missing scope", "/billing/x", readOnly, 403, realm + `, error="insufficient_scope", scope="read write"`},
		{"enough scope", "/search/v1/x", readOnly, 200, ""},
		{"public route without token", "/status/ping", "", 200, ""},
		{"no route", "/admin", readOnly, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, challenge := gwStatus(t, gw.URL+tt.path, tt.token)
			if status != tt.status || challenge != tt.challenge {
				t.Errorf("got %d %q\n want %d %q", status, challenge, tt.status, tt.challenge)
			}
		})
	}
}

// TestGatewayPathSpellings: with /api public and /api/admin needing the
// write scope, "/api/admin;x/users" must not reach the backend through the
// public route (Tomcat, Jetty and Spring would serve /api/admin/users), nor
// any encoded spelling of it; each is the gateway's own 400.
func TestGatewayPathSpellings(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		c["routes"] = []any{
			map[string]any{"path_prefix": "/api", "upstream": backend.URL, "public": true},
			map[string]any{"path_prefix": "/api/admin", "upstream": backend.URL, "scopes": []string{"write"}},
		}
	})
	tests := []struct {
		path   string
		status int
	}{
		{"/api/admin;x/users", 400},
		{"/api/admin%3Bx/users", 400},
		{"/api/admin%3bx/users", 400},
		{"/api/users;jsessionid=1", 400},
		{"/api/admin/..;/users", 400},
		{"/api%2Fadmin/users", 400},
		{"/api%2fadmin/users", 400},
		{"/api/x/%2E%2E/admin/users", 400},
		{"/api/users", 200},
		{"/api/users/a%2Fb", 200},
		{"/api/admin/users", 401},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, gw.URL+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // on the wire exactly as written
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			var answer struct {
				Error string `json:"error"`
				Path  string `json:"path"`
			}
			_ = json.Unmarshal(body, &answer)
			switch {
			case tt.status == 400 && (answer.Error != "invalid_request" || answer.Path != ""):
				t.Errorf("want the gateway's own invalid_request, got %s", body)
			case tt.status == 200 && answer.Path == "":
				t.Errorf("want the backend's answer, got %s", body)
			}
		})
	}
}

// TestGatewayRevocation: a revoked token is refused at once with
// cache.ttl 0, within the TTL otherwise, and is never accepted again.
func TestGatewayRevocation(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	noCache := f.startGateway(t, backend.URL, func(c map[string]any) { c["cache"] = map[string]any{"ttl": "0s"} })
	shortCache := f.startGateway(t, backend.URL, func(c map[string]any) { c["cache"] = map[string]any{"ttl": "1s", "negative_ttl": "1s"} })

	a := f.token(t, "billing")
	if status, _ := gwStatus(t, noCache.URL+"/search/v1/x", a); status != 200 {
		t.Fatalf("before revocation: %d", status)
	}
	f.revoke(t, a)
	if status, challenge := gwStatus(t, noCache.URL+"/search/v1/x", a); status != 401 || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("revoked token with ttl 0: %d %q, want 401 invalid_token at once", status, challenge)
	}

	b := f.token(t, "billing")
	if status, _ := gwStatus(t, shortCache.URL+"/search/v1/x", b); status != 200 {
		t.Fatalf("before revocation: %d", status)
	}
	f.revoke(t, b)
	gwEventually(t, 15*time.Second, "revoked token refused after the 1s cache TTL", func() bool {
		status, _ := gwStatus(t, shortCache.URL+"/search/v1/x", b)
		return status == 401
	})
	for i := range 5 {
		for _, gw := range []*gwProc{noCache, shortCache} {
			if status, _ := gwStatus(t, gw.URL+"/search/v1/x", b); status != 401 {
				t.Fatalf("revoked token accepted again (round %d): %d", i, status)
			}
		}
	}
}

// TestGatewayExpiredToken: a cached entry never outlives the token's exp,
// even with a long cache TTL.
func TestGatewayExpiredToken(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque", "access_token_ttl": "2s"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) { c["cache"] = map[string]any{"ttl": "1h"} })
	tok := f.token(t, "billing")
	if status, _ := gwStatus(t, gw.URL+"/search/v1/x", tok); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	gwEventually(t, 15*time.Second, "expired token refused", func() bool {
		status, challenge := gwStatus(t, gw.URL+"/search/v1/x", tok)
		return status == 401 && strings.Contains(challenge, `error="invalid_token"`)
	})
}

// TestGatewayRateLimit: per-client token buckets; 429 with Retry-After,
// RateLimit-* on every response, and recovery after Retry-After.
func TestGatewayRateLimit(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		c["tiers"] = map[string]any{"bronze": map[string]any{"requests": 1, "per": "1s", "burst": 2}, "gold": map[string]any{"requests": 1000, "per": "1s"}}
		c["client_tiers"] = map[string]string{"device-42": "gold"}
		c["routes"].([]any)[0].(map[string]any)["tier"] = "bronze"
	})
	billing := f.token(t, "billing")
	device := f.token(t, "device-42")
	for i, wantRemaining := range []string{"1", "0"} {
		resp, body := gwGet(t, gw.URL+"/search/v1/x", billing, nil)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "2" || resp.Header.Get("RateLimit-Remaining") != wantRemaining || resp.Header.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d: %d, RateLimit %q/%q/%q: %s", i, resp.StatusCode, resp.Header.Get("RateLimit-Limit"),
				resp.Header.Get("RateLimit-Remaining"), resp.Header.Get("RateLimit-Reset"), body)
		}
	}
	resp, _ := gwGet(t, gw.URL+"/search/v1/x", billing, nil)
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || err != nil || retry < 1 || resp.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("over the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another client (a device with its own tier) has its own bucket.
	for range 5 {
		if resp, _ := gwGet(t, gw.URL+"/search/v1/x", device, nil); resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "1000" {
			t.Fatalf("device-42: %d, limit %q", resp.StatusCode, resp.Header.Get("RateLimit-Limit"))
		}
	}
	// Recovery: after Retry-After the client is served again.
	time.Sleep(time.Duration(retry) * time.Second)
	if resp, _ := gwGet(t, gw.URL+"/search/v1/x", billing, nil); resp.StatusCode != 200 {
		t.Errorf("after Retry-After %ds: %d", retry, resp.StatusCode)
	}
}

// TestGatewayAuthServerDown: cached tokens keep working, uncached ones are
// refused with 503 (fail closed), never passed through.
func TestGatewayAuthServerDown(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, nil)
	cached := f.token(t, "billing")
	uncached := f.token(t, "billing", "read")
	if status, _ := gwStatus(t, gw.URL+"/search/v1/x", cached); status != 200 {
		t.Fatalf("status %d", status)
	}
	f.srv.Stop()
	if status, _ := gwStatus(t, gw.URL+"/search/v1/x", cached); status != 200 {
		t.Errorf("cached token with the server down: %d, want 200", status)
	}
	resp, body := gwGet(t, gw.URL+"/search/v1/x", uncached, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("uncached token with the server down: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if status, _ := gwStatus(t, gw.URL+"/status", ""); status != 200 {
		t.Errorf("public route with the server down: %d", status)
	}
}

// TestGatewayConcurrentIntrospection: 200 concurrent requests with one new
// token cost the server one introspection; the gateway's metrics say so
// too, and its memory stays bounded under load.
func TestGatewayConcurrentIntrospection(t *testing.T) {
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) { c["admin_listen"] = "127.0.0.1:0" })
	tok := f.token(t, "billing")
	before := f.introspections(t)

	const n = 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodGet, gw.URL+"/search/v1/x", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if got := f.introspections(t) - before; got != 1 {
		t.Errorf("%d concurrent requests with one token made %d introspection calls, want 1", n, got)
	}
	if got := gwMetricValue(t, gw.AdminURL+"/metrics", "postern_gateway_requests_total", `route="/search/v1"`, `client_id="billing"`, `code="200"`); got != n {
		t.Errorf("gateway metrics count %d requests, want %d", got, n)
	}

	// Under sustained load (50 connections) the gateway stays small.
	var load sync.WaitGroup
	for range 50 {
		load.Add(1)
		go func() {
			defer load.Done()
			for range 200 {
				req, _ := http.NewRequest(http.MethodGet, gw.URL+"/search/v1/x", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	load.Wait()
	if kb := gatewayPeakRSS(t, gw.cmd.Process.Pid); kb > 100*1024 {
		t.Errorf("gateway peak RSS %d MiB under load, want ≤ 100 MiB", kb/1024)
	} else {
		t.Logf("gateway peak RSS under load: %d MiB", kb/1024)
	}
}

// TestGatewayJWT: JWT access tokens are checked locally against the JWKS
// (no introspection), across a key rotation, and while the server is down.
func TestGatewayJWT(t *testing.T) {
	addr := gwFreeAddr(t)
	f := newGWFixture(t, `{"access_token_format": "jwt"}`, "--addr", addr)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		c["cache"] = map[string]any{"ttl": "0s"} // every request verifies the signature
		c["jwks"] = map[string]any{"min_refetch_interval": "0s"}
	})
	a := f.token(t, "billing")
	if strings.Count(a, ".") != 2 {
		t.Fatalf("server did not issue a JWT: %q", a)
	}
	before := f.introspections(t)
	for range 3 {
		seen := gwSeen(t, gw.URL+"/search/v1/x", a, nil)
		if seen.ClientID != "billing" || seen.UserID != "" || seen.Scope != "read write" {
			t.Fatalf("JWT identity: %+v", seen)
		}
	}
	if got := f.introspections(t) - before; got != 0 {
		t.Errorf("JWT access tokens caused %d introspections, want 0", got)
	}
	parts := strings.Split(a, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	if status, challenge := gwStatus(t, gw.URL+"/search/v1/x", tampered); status != 401 || !strings.Contains(challenge, "invalid_token") {
		t.Errorf("tampered JWT: %d %q", status, challenge)
	}

	// Rotate the signing key (the store is locked while the server runs).
	f.srv.Stop()
	if out, errOut, code := runPostern(t, "", "keys", "rotate", "--config", f.serverConfig, "--data", f.srv.DataDir); code != 0 {
		t.Fatalf("keys rotate: exit %d: %s%s", code, out, errOut)
	}
	f.srv = startServer(t, f.serverConfig, f.srv.DataDir, "--addr", addr)
	b := f.token(t, "billing")
	var ha, hb struct {
		Kid string `json:"kid"`
	}
	decodeJWTHeader(t, a, &ha)
	decodeJWTHeader(t, b, &hb)
	if ha.Kid == hb.Kid {
		t.Fatalf("rotation kept kid %s", ha.Kid)
	}
	for name, tok := range map[string]string{"new key": b, "old key, still published": a} {
		if status, _ := gwStatus(t, gw.URL+"/search/v1/x", tok); status != 200 {
			t.Errorf("%s: %d", name, status)
		}
	}

	// With the server gone, the fetched keys still verify tokens.
	f.srv.Stop()
	if status, _ := gwStatus(t, gw.URL+"/search/v1/x", b); status != 200 {
		t.Errorf("JWT with the server down: %d, want 200 (local validation)", status)
	}
}

func decodeJWTHeader(t *testing.T, tok string, v any) {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

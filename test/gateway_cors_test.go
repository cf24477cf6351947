package test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestGatewayCORS: a browser page on an allowed origin can call a route
// with cors through the real gateway. The preflight is answered by the
// gateway without a token and without reaching the backend; the actual
// request is checked and proxied as usual, and its answer, the gateway's
// own 401 included, carries Access-Control-Allow-Origin.
func TestGatewayCORS(t *testing.T) {
	const origin = "https://app.example.com"
	f := newGWFixture(t, `{"access_token_format": "opaque"}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		c["admin_listen"] = "127.0.0.1:0"
		route := c["routes"].([]any)[0].(map[string]any) // /search/v1, scope read
		route["cors"] = map[string]any{
			"allowed_origins": []string{origin},
			"allowed_headers": []string{"Content-Type"},
			"exposed_headers": []string{"X-Request-Id"},
			"max_age":         "10m",
		}
	})
	upstreamCalls := func() int {
		return gwMetricValue(t, gw.AdminURL+"/metrics", "postern_gateway_upstream_duration_seconds_count", `route="/search/v1"`)
	}
	preflight := func(path, from string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodOptions, gw.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", from)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	introspections := f.introspections(t)

	// Preflight from the allowed origin: 204 from the gateway, no token.
	resp, body := preflight("/search/v1/query", origin)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("preflight: status %d, body %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  origin,
		"Access-Control-Allow-Methods": "GET",
		"Access-Control-Allow-Headers": "Authorization, Content-Type",
		"Access-Control-Max-Age":       "600",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("preflight %s = %q, want %q", k, got, want)
		}
	}
	if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
		t.Errorf("preflight Access-Control-Allow-Credentials = %q without allow_credentials", v)
	}
	// From another origin: 403 without CORS headers.
	resp, _ = preflight("/search/v1/query", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: status %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if n := upstreamCalls(); n != 0 {
		t.Errorf("%d preflights reached the backend", n)
	}
	if n := f.introspections(t); n != introspections {
		t.Errorf("preflights caused %d introspections", n-introspections)
	}
	// A route without cors: OPTIONS needs a token, as before.
	if resp, _ := preflight("/billing/invoices", origin); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight on a route without cors: status %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// The actual request, with a token: proxied, readable by the page.
	tok := f.token(t, "billing")
	resp, body = gwGet(t, gw.URL+"/search/v1/query?q=tax", tok, map[string]string{"Origin": origin})
	seen := decodeSeen(t, resp, body)
	if seen.Path != "/query" || seen.ClientID != "billing" || seen.Headers["origin"] != origin {
		t.Errorf("backend saw path %q, client %q, origin %q", seen.Path, seen.ClientID, seen.Headers["origin"])
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
	}
	if got := resp.Header.Values("Vary"); !gwContainsFold(got, "Origin") {
		t.Errorf("Vary = %q, want Origin", got)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Request-Id") {
		t.Errorf("Access-Control-Expose-Headers = %q", got)
	}
	if n := upstreamCalls(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}

	// The gateway's own 401 is readable by the page too.
	resp, body = gwGet(t, gw.URL+"/search/v1/query", "", map[string]string{"Origin": origin})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("401: Access-Control-Allow-Origin = %q, want %q", got, origin)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "WWW-Authenticate") || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401: WWW-Authenticate %q, exposed %q", resp.Header.Get("WWW-Authenticate"), got)
	}
	// Another origin is still served (CORS is not authorization), without
	// CORS headers: the browser keeps the answer from the page.
	resp, body = gwGet(t, gw.URL+"/search/v1/query", tok, map[string]string{"Origin": "https://evil.example"})
	decodeSeen(t, resp, body)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("another origin: Access-Control-Allow-Origin = %q", got)
	}
}

func gwContainsFold(vals []string, want string) bool {
	for _, v := range vals {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), want) {
				return true
			}
		}
	}
	return false
}

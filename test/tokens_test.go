package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

var secretLine = regexp.MustCompile(`(?m)^client_secret:\s+(\S+)\s*$\s*^client_secret_hash:\s+(\S+)\s*$`)

// newClientSecret asks the binary for a fresh secret and its hash, as an
// operator would.
func newClientSecret(t *testing.T) (secret, hash string) {
	t.Helper()
	out, errOut, code := runPostern(t, "", "clients", "secret")
	if code != 0 {
		t.Fatalf("postern clients secret: exit %d: %s", code, errOut)
	}
	m := secretLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("unexpected output of postern clients secret:\n%s", out)
	}
	return m[1], m[2]
}

// ccFixture is a server with two machine clients: "billing" (secret hash,
// client_secret_basic) and "reports" (plain development secret,
// client_secret_post), plus a public client.
type ccFixture struct {
	srv           *server
	billingSecret string
}

const reportsSecret = "reports-dev-secret"

func ccConfig(t *testing.T, format string) (string, string) {
	secret, hash := newClientSecret(t)
	cfg := fmt.Sprintf(`{
  "tokens": {"access_token_format": %q, "access_token_ttl": "10m"},
  "clients": [
    {"client_id": "billing", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read write", "resource_server": true},
    {"client_id": "reports", "client_secret": %q, "token_endpoint_auth_method": "client_secret_post", "grant_types": ["client_credentials"], "scope": "read"},
    {"client_id": "webapp", "client_secret": "webapp-dev-secret", "grant_types": ["authorization_code"], "redirect_uris": ["https://app.example.com/cb"], "scope": "read"},
    {"client_id": "spa", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"], "redirect_uris": ["http://127.0.0.1:3000/cb"], "scope": "read"}
  ]
}`, format, hash, reportsSecret)
	return cfg, secret
}

func newCCFixture(t *testing.T, format string) *ccFixture {
	cfg, secret := ccConfig(t, format)
	return &ccFixture{srv: startServer(t, writeConfig(t, cfg), ""), billingSecret: secret}
}

func (f *ccFixture) billing(scopes ...string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:     "billing",
		ClientSecret: f.billingSecret,
		TokenURL:     f.srv.URL + "/oauth2/token",
		Scopes:       scopes,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
}

// postForm sends a form with optional HTTP Basic credentials.
func postForm(t *testing.T, endpoint string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: status %d, body is not JSON: %q", req.Method, req.URL.Path, resp.StatusCode, body)
		}
	}
	return resp, m
}

func (f *ccFixture) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, body := postForm(t, f.srv.URL+"/oauth2/introspect", url.Values{"token": {token}}, "billing", f.billingSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: status %d: %v", resp.StatusCode, body)
	}
	return body
}

func TestClientCredentialsIntrospectRevoke(t *testing.T) {
	f := newCCFixture(t, "opaque")
	ctx := context.Background()

	tok, err := f.billing().Token(ctx)
	if err != nil {
		t.Fatalf("client credentials token: %v", err)
	}
	if tok.TokenType != "bearer" && tok.TokenType != "Bearer" {
		t.Errorf("token_type = %q", tok.TokenType)
	}
	if tok.RefreshToken != "" {
		t.Error("client credentials must not return a refresh token")
	}
	if got := tok.Extra("scope"); got != "read write" {
		t.Errorf("default scope = %v, want every registered scope", got)
	}

	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["client_id"] != "billing" || info["scope"] != "read write" || info["token_type"] != "Bearer" {
		t.Errorf("introspection = %v", info)
	}
	if _, ok := info["sub"]; ok {
		t.Errorf("client-credentials token has a subject: %v", info["sub"])
	}
	if info["iss"] != f.srv.URL {
		t.Errorf("iss = %v, want %s", info["iss"], f.srv.URL)
	}

	narrow, err := f.billing("read").Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.introspect(t, narrow.AccessToken)["scope"]; got != "read" {
		t.Errorf("requested scope read, introspection scope = %v", got)
	}

	// A client that is not a resource server sees other clients' tokens as
	// inactive (RFC 7662 §4), and its own as active.
	resp, other := postForm(t, f.srv.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {"reports"}, "client_secret": {reportsSecret}}, "", "")
	if resp.StatusCode != http.StatusOK || other["active"] != false || len(other) != 1 {
		t.Errorf("introspection of billing's token by reports: %d %v, want only active=false", resp.StatusCode, other)
	}

	// Another client's revocation has no effect, and says 200 (RFC 7009 §2.2).
	resp, _ = postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {"reports"}, "client_secret": {reportsSecret}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("foreign revocation: status %d, want 200", resp.StatusCode)
	}
	if f.introspect(t, tok.AccessToken)["active"] != true {
		t.Fatal("another client's revocation revoked the token")
	}

	resp, _ = postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "billing", f.billingSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	if got := f.introspect(t, tok.AccessToken); got["active"] != false || len(got) != 1 {
		t.Errorf("after revocation introspection = %v, want only active=false", got)
	}
	if f.introspect(t, narrow.AccessToken)["active"] != true {
		t.Error("revoking one token revoked another grant")
	}
	// Metrics count what happened, by endpoint and grant.
	mresp, err := http.Get(f.srv.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`postern_tokens_issued_total{grant_type="client_credentials"} 2`,
		`postern_http_requests_total{code="200",endpoint="token"} 2`,
		`postern_http_request_duration_seconds_bucket{endpoint="introspect"`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Revoking again, or an unknown token, is still 200.
	for _, tokStr := range []string{tok.AccessToken, "not-a-token"} {
		resp, _ = postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {tokStr}}, "billing", f.billingSecret)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("revoke %q: status %d, want 200", tokStr, resp.StatusCode)
		}
	}
}

func TestClientSecretPost(t *testing.T) {
	f := newCCFixture(t, "opaque")
	cfg := &clientcredentials.Config{ClientID: "reports", ClientSecret: reportsSecret, TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatalf("client_secret_post: %v", err)
	}
	if got := f.introspect(t, tok.AccessToken); got["client_id"] != "reports" || got["scope"] != "read" {
		t.Errorf("introspection = %v", got)
	}
	// The same client over HTTP Basic breaks its registered method.
	cfg.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := cfg.Token(context.Background()); err == nil {
		t.Error("client_secret_post client authenticated with HTTP Basic")
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	f := newCCFixture(t, "opaque")
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, doc := do(t, mustGet(t, f.srv.URL+path))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		want := map[string]string{
			"issuer":                 f.srv.URL,
			"token_endpoint":         f.srv.URL + "/oauth2/token",
			"introspection_endpoint": f.srv.URL + "/oauth2/introspect",
			"revocation_endpoint":    f.srv.URL + "/oauth2/revoke",
			"jwks_uri":               f.srv.URL + "/.well-known/jwks.json",
			"authorization_endpoint": f.srv.URL + "/oauth2/authorize",
		}
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("%s: %s = %v, want %s", path, k, doc[k], v)
			}
		}
		if !containsAll(doc["code_challenge_methods_supported"], "S256") || containsAll(doc["code_challenge_methods_supported"], "plain") {
			t.Errorf("code_challenge_methods_supported = %v", doc["code_challenge_methods_supported"])
		}
		if !containsAll(doc["response_types_supported"], "code", "token") {
			t.Errorf("response_types_supported = %v", doc["response_types_supported"])
		}
		if !containsAll(doc["grant_types_supported"], "client_credentials", "authorization_code", "implicit", "password", "refresh_token") {
			t.Errorf("grant_types_supported = %v", doc["grant_types_supported"])
		}
		if !containsAll(doc["token_endpoint_auth_methods_supported"], "client_secret_basic", "client_secret_post") {
			t.Errorf("token_endpoint_auth_methods_supported = %v", doc["token_endpoint_auth_methods_supported"])
		}
	}
	resp, jwks := do(t, mustGet(t, f.srv.URL+"/.well-known/jwks.json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks status %d", resp.StatusCode)
	}
	keys, _ := jwks["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1: %v", len(keys), jwks)
	}
	k := keys[0].(map[string]any)
	if k["kty"] != "EC" || k["alg"] != "ES256" || k["kid"] == "" || k["d"] != nil {
		t.Errorf("jwks key = %v", k)
	}
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func containsAll(list any, want ...string) bool {
	items, _ := list.([]any)
	have := map[string]bool{}
	for _, it := range items {
		if s, ok := it.(string); ok {
			have[s] = true
		}
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

package test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokenEndpointErrors drives every rejection the RFCs define and checks
// the exact error code, status and challenge (RFC 6749 §5.2, RFC 7009, RFC 7662).
func TestEndpointErrors(t *testing.T) {
	f := newCCFixture(t, "opaque")
	tok, err := f.billing().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := f.srv.URL + "/oauth2/token"
	form := "application/x-www-form-urlencoded"
	cc := "grant_type=client_credentials"

	type row struct {
		name        string
		method      string
		url         string
		contentType string
		body        string
		basicUser   string
		basicPass   string
		bearer      string
		status      int
		code        string
	}
	rows := []row{
		{name: "wrong secret (basic)", url: tokenURL, contentType: form, body: cc, basicUser: "billing", basicPass: "wrong", status: 401, code: "invalid_client"},
		{name: "wrong secret (post)", url: tokenURL, contentType: form, body: cc + "&client_id=reports&client_secret=wrong", status: 401, code: "invalid_client"},
		{name: "unknown client", url: tokenURL, contentType: form, body: cc, basicUser: "nobody", basicPass: "x", status: 401, code: "invalid_client"},
		{name: "no client authentication", url: tokenURL, contentType: form, body: cc, status: 401, code: "invalid_client"},
		{name: "basic client uses post", url: tokenURL, contentType: form, body: cc + "&client_id=billing&client_secret=" + url.QueryEscape(f.billingSecret), status: 401, code: "invalid_client"},
		{name: "unknown grant type", url: tokenURL, contentType: form, body: "grant_type=urn:example:magic", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "unsupported_grant_type"},
		{name: "missing grant type", url: tokenURL, contentType: form, body: "scope=read", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "grant not registered", url: tokenURL, contentType: form, body: cc, basicUser: "webapp", basicPass: "webapp-dev-secret", status: 400, code: "unauthorized_client"},
		{name: "unknown scope", url: tokenURL, contentType: form, body: cc + "&scope=read+admin", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_scope"},
		{name: "malformed body", url: tokenURL, contentType: form, body: "grant_type=%zz", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "repeated parameter", url: tokenURL, contentType: form, body: cc + "&" + cc, basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "oversized body", url: tokenURL, contentType: form, body: cc + "&pad=" + strings.Repeat("a", 2<<20), basicUser: "billing", basicPass: f.billingSecret, status: 413, code: "invalid_request"},
		{name: "JSON body", url: tokenURL, contentType: "application/json", body: `{"grant_type":"client_credentials"}`, basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "GET token endpoint", method: http.MethodGet, url: tokenURL + "?" + cc, basicUser: "billing", basicPass: f.billingSecret, status: 405, code: "invalid_request"},
		{name: "introspect without client auth", url: f.srv.URL + "/oauth2/introspect", contentType: form, body: "token=" + url.QueryEscape(tok.AccessToken), status: 401, code: "invalid_client"},
		{name: "introspect with a bearer token", url: f.srv.URL + "/oauth2/introspect", contentType: form, body: "token=" + url.QueryEscape(tok.AccessToken), bearer: tok.AccessToken, status: 401, code: "invalid_client"},
		{name: "introspect with wrong secret", url: f.srv.URL + "/oauth2/introspect", contentType: form, body: "token=x", basicUser: "billing", basicPass: "nope", status: 401, code: "invalid_client"},
		{name: "introspect by public client", url: f.srv.URL + "/oauth2/introspect", contentType: form, body: "token=x&client_id=spa", status: 401, code: "invalid_client"},
		{name: "introspect without token", url: f.srv.URL + "/oauth2/introspect", contentType: form, body: "token_type_hint=access_token", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "revoke with wrong secret", url: f.srv.URL + "/oauth2/revoke", contentType: form, body: "token=x", basicUser: "billing", basicPass: "nope", status: 401, code: "invalid_client"},
		{name: "revoke without token", url: f.srv.URL + "/oauth2/revoke", contentType: form, body: "token_type_hint=access_token", basicUser: "billing", basicPass: f.billingSecret, status: 400, code: "invalid_request"},
		{name: "unknown endpoint", method: http.MethodGet, url: f.srv.URL + "/oauth2/nothing", status: 404, code: "invalid_request"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			method := r.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, r.url, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.contentType != "" {
				req.Header.Set("Content-Type", r.contentType)
			}
			if r.basicUser != "" {
				req.SetBasicAuth(url.QueryEscape(r.basicUser), url.QueryEscape(r.basicPass))
			}
			if r.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+r.bearer)
			}
			resp, body := do(t, req)
			if resp.StatusCode != r.status || body["error"] != r.code {
				t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, body, r.status, r.code)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			challenge := resp.Header.Get("WWW-Authenticate")
			// RFC 6749 §5.2 and RFC 9110 §15.5.2: a 401 carries a challenge.
			if (r.status == http.StatusUnauthorized) != strings.HasPrefix(challenge, "Basic ") {
				t.Errorf("status %d with WWW-Authenticate = %q", resp.StatusCode, challenge)
			}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode >= 500 {
				if d, _ := body["error_description"].(string); strings.Contains(d, f.billingSecret) {
					t.Error("error description leaks the secret")
				}
			}
		})
	}
	// The server survived all of that and the token still works.
	if f.introspect(t, tok.AccessToken)["active"] != true {
		t.Error("token inactive after the error barrage")
	}
	if strings.Contains(f.srv.logs.String(), f.billingSecret) || strings.Contains(f.srv.logs.String(), tok.AccessToken) {
		t.Error("a secret or token appears in the server log")
	}
}

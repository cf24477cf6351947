package test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRegisteredSPACORS: a SPA a pipeline registers through RFC 7591 can
// call the token endpoint from its page's origin at once (the preflight
// and the POST both allow it), a stranger's origin cannot, and deleting
// the SPA through RFC 7592 takes its origin away.
func TestRegisteredSPACORS(t *testing.T) {
	f := newRegistrationFixture(t, "")
	const origin = "http://127.0.0.1:3999"
	do := func(method, from string, form url.Values) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, f.srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", from)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// Before the registration: the server has loaded its set without it.
	if resp := do(http.MethodOptions, origin, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("preflight before the registration: %d, want 403", resp.StatusCode)
	}

	status, reg, _ := f.register(t, f.initialToken, "application/json", jsonBody(t, map[string]any{
		"client_name": "Registered SPA", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		"redirect_uris": []string{origin + "/callback"},
	}))
	if status != http.StatusCreated {
		t.Fatalf("register the SPA: %d %v", status, reg)
	}
	clientID, _ := reg["client_id"].(string)

	resp := do(http.MethodOptions, origin, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("preflight: %d, Access-Control-Allow-Origin %q; want 204 allowing %s", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), origin)
	}
	// What the SPA posts after its redirect; the code is made up, so the
	// answer is invalid_grant, which the page must be able to read too.
	exchange := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {"made-up"},
		"redirect_uri": {origin + "/callback"}, "code_verifier": {strings.Repeat("v", 43)}}
	resp = do(http.MethodPost, origin, exchange)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("token POST: %d, Access-Control-Allow-Origin %q; want 400 readable by %s", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), origin)
	}
	if resp := do(http.MethodOptions, "http://127.0.0.1:4000", nil); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("stranger's preflight: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	uri, _ := reg["registration_client_uri"].(string)
	regToken, _ := reg["registration_access_token"].(string)
	if status, body, _ := f.call(t, http.MethodDelete, uri, regToken, "", nil); status != http.StatusNoContent {
		t.Fatalf("delete the SPA: %d %v", status, body)
	}
	if resp := do(http.MethodOptions, origin, nil); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight after the deletion: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

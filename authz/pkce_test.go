package authz

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
)

// PKCE for public clients is enforced twice: Postern's authorizePolicy at
// the authorization endpoint, and fosite's PKCE handler (composed in
// fosite.go with EnforcePKCEForPublicClients, plain refused) at both
// endpoints. The tests below hold each lock on its own.

// TestPKCEVerifierAtTokenEndpoint: a code a public client obtained with
// PKCE redeems only with the matching code_verifier (RFC 7636 §4.6).
func TestPKCEVerifierAtTokenEndpoint(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	for _, tc := range []struct{ name, verifier string }{
		{"no code_verifier", ""},
		{"wrong code_verifier", strings.Repeat("w", 43)},
		{"code_challenge as code_verifier", ctlChallenge},
	} {
		code := b.code(codeParams("spa", spaCallback))
		status, body := f.exchange(t, "spa", code, spaCallback, tc.verifier)
		wantOAuthError(t, tc.name, status, body, http.StatusBadRequest, "invalid_grant")
	}
	code := b.code(codeParams("spa", spaCallback))
	if status, body := f.exchange(t, "spa", code, spaCallback, ctlVerifier); status != http.StatusOK || body["access_token"] == nil {
		t.Errorf("right code_verifier: %d %v", status, body)
	}
}

// TestPKCEPublicClientAtTokenEndpoint holds fosite's
// EnforcePKCEForPublicClients on the paths where a public client's code has
// no PKCE record at the token endpoint, so Postern's check at the
// authorization endpoint cannot help:
//   - a failed exchange consumes the record (fosite deletes it before it
//     compares), so whoever holds a stolen code could try once with any
//     verifier, then again with none;
//   - a client made public by a configuration reload presents a code it
//     obtained, without PKCE, while it was confidential.
func TestPKCEPublicClientAtTokenEndpoint(t *testing.T) {
	t.Run("stolen code, wrong verifier then none", func(t *testing.T) {
		f := newCtlFixture(t)
		b := f.browser(t)
		b.signIn("alice")
		code := b.code(codeParams("spa", spaCallback))
		status, body := f.exchange(t, "spa", code, spaCallback, strings.Repeat("x", 43))
		wantOAuthError(t, "wrong verifier", status, body, http.StatusBadRequest, "invalid_grant")
		status, body = f.exchange(t, "spa", code, spaCallback, "")
		if status == http.StatusOK || body["access_token"] != nil {
			t.Fatalf("code redeemed without code_verifier after a failed attempt: %d %v", status, body)
		}
	})
	t.Run("client made public by a reload", func(t *testing.T) {
		f := newCtlFixture(t)
		b := f.browser(t)
		b.signIn("alice")
		params := codeParams("web", webCallback)
		params.Del("code_challenge")
		params.Del("code_challenge_method")
		page := b.authorize(params) // web asks for consent
		csrf, auth := formFields(t, page.body)
		r := b.post(pathConsent, url.Values{csrfField: {csrf}, "auth": {auth}, "decision": {"allow"}})
		if r.status != http.StatusSeeOther || r.locationParams(t).Get("code") == "" {
			t.Fatalf("consent: %s", r)
		}
		code := r.locationParams(t).Get("code")

		cs := ctlClients("")
		for _, c := range cs {
			if c.ID == "web" {
				c.SecretHash, c.TokenEndpointAuthMethod = nil, clients.AuthNone
			}
		}
		f.srv = f.newServer(t, cs)
		status, body := f.exchange(t, "web", code, webCallback, "")
		if status == http.StatusOK || body["access_token"] != nil {
			t.Fatalf("a public client redeemed a code without PKCE: %d %v", status, body)
		}
		if status != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Errorf("got %d %v, want 400 invalid_request (RFC 7636 §4.4.1)", status, body)
		}
	})
}

// fositeAuthorize runs an authorization request through the composed
// provider alone, without Postern's checks around it.
func (f *ctlFixture) fositeAuthorize(t *testing.T, params url.Values) error {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, pathAuthorize+"?"+params.Encode(), nil)
	ctx := req.Context()
	ar, err := f.srv.provider.NewAuthorizeRequest(ctx, req)
	if err != nil {
		t.Fatalf("fosite refused the request itself: %v", err)
	}
	ar.GrantScope("read")
	_, err = f.srv.provider.NewAuthorizeResponse(ctx, ar, &Session{Subject: "alice", Username: "alice"})
	return err
}

// TestFositePKCEPolicy holds the inner lock at the authorization endpoint:
// the composed provider refuses a public client without code_challenge
// and plain challenges from anyone.
func TestFositePKCEPolicy(t *testing.T) {
	f := newCtlFixture(t)
	noPKCE := codeParams("spa", spaCallback)
	noPKCE.Del("code_challenge")
	noPKCE.Del("code_challenge_method")
	plain := codeParams("spa", spaCallback)
	plain.Set("code_challenge", ctlVerifier)
	plain.Set("code_challenge_method", "plain")
	plainWeb := codeParams("web", webCallback)
	plainWeb.Set("code_challenge", ctlVerifier)
	plainWeb.Set("code_challenge_method", "plain")
	noMethod := codeParams("spa", spaCallback)
	noMethod.Del("code_challenge_method")
	for name, params := range map[string]url.Values{
		"public client without code_challenge": noPKCE,
		"plain, public client":                 plain,
		"plain, confidential client":           plainWeb,
		"no method (plain by default)":         noMethod,
	} {
		if err := f.fositeAuthorize(t, params); !errors.Is(err, fosite.ErrInvalidRequest) {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
	if err := f.fositeAuthorize(t, codeParams("spa", spaCallback)); err != nil {
		t.Errorf("control, S256: %v", err)
	}
}

// TestAuthorizePKCEPolicy holds the outer lock: Postern's policy, and what
// the browser sees (the error at the registered callback, no code).
func TestAuthorizePKCEPolicy(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	spa, web := f.srv.clients["spa"], f.srv.clients["web"]
	for _, tc := range []struct {
		name   string
		client *clients.Client
		edit   func(url.Values)
		ok     bool
	}{
		{"public client without code_challenge", spa, func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, false},
		{"plain, public client", spa, func(q url.Values) { q.Set("code_challenge", ctlVerifier); q.Set("code_challenge_method", "plain") }, false},
		{"plain, confidential client", web, func(q url.Values) { q.Set("code_challenge", ctlVerifier); q.Set("code_challenge_method", "plain") }, false},
		{"no method (plain by default)", spa, func(q url.Values) { q.Del("code_challenge_method") }, false},
		{"confidential client without PKCE", web, func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, true},
		{"public client with S256", spa, func(url.Values) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb := spaCallback
			if tc.client == web {
				cb = webCallback
			}
			q := codeParams(tc.client.ID, cb)
			tc.edit(q)
			// Postern's rule alone.
			req := httptest.NewRequest(http.MethodGet, pathAuthorize+"?"+q.Encode(), nil)
			ar, err := f.srv.provider.NewAuthorizeRequest(req.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if err := authorizePolicy(ar, tc.client); (err == nil) != tc.ok {
				t.Errorf("authorizePolicy = %v, want ok=%v", err, tc.ok)
			}
			// And through the endpoint.
			r := b.authorize(q)
			if tc.ok {
				return
			}
			if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, cb+"?") {
				t.Fatalf("want a redirect to the callback: %s", r)
			}
			if got := r.locationParams(t); got.Get("error") != "invalid_request" || got.Get("code") != "" || got.Get("state") != q.Get("state") {
				t.Errorf("callback %v, want error=invalid_request with the state and no code", got)
			}
		})
	}
}

// TestPKCEChallengeSurvivesFailedExchange: fosite deletes a code's PKCE
// record before it compares the verifier, so a failed exchange used to strip
// the challenge from a code that stayed redeemable, and a confidential
// client's code then redeemed with no verifier at all. The challenge stays
// until the code is redeemed.
func TestPKCEChallengeSurvivesFailedExchange(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	page := b.authorize(codeParams("web", webCallback)) // web asks for consent
	csrf, auth := formFields(t, page.body)
	r := b.post(pathConsent, url.Values{csrfField: {csrf}, "auth": {auth}, "decision": {"allow"}})
	code := r.locationParams(t).Get("code")
	if r.status != http.StatusSeeOther || code == "" {
		t.Fatalf("consent: %s", r)
	}
	exchange := func(verifier string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webCallback}}
		if verifier != "" {
			form.Set("code_verifier", verifier)
		}
		status, body, _ := f.tokenCall(t, pathToken, form, "web", f.secret)
		return status, body
	}
	status, body := exchange(strings.Repeat("x", 43))
	wantOAuthError(t, "wrong verifier", status, body, http.StatusBadRequest, "invalid_grant")
	status, body = exchange("")
	if status == http.StatusOK || body["access_token"] != nil {
		t.Fatalf("after a failed exchange the code redeemed without its code_verifier: %d %v", status, body)
	}
	if status, body = exchange(ctlVerifier); status != http.StatusOK || body["access_token"] == nil {
		t.Errorf("the right verifier after failed attempts: %d %v", status, body)
	}
}

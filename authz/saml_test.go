package authz

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/testsaml"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/samlsp/samltest"
)

type samlFixture struct {
	srv *Server
	idp *samltest.IdP
}

func newSAMLFixture(t *testing.T, issuer string) *samlFixture {
	t.Helper()
	st, sec, km := newStoreAndKeys(t)
	spKey, spCert, err := keys.SAMLKeyPair(context.Background(), st, sec, "corp")
	if err != nil {
		t.Fatal(err)
	}
	p, err := samlsp.NewProvider(samlsp.ProviderConfig{ID: "corp", DisplayName: "Corporate SSO"}, samlsp.Options{Issuer: issuer, Key: spKey, Certificate: spCert, Replay: st})
	if err != nil {
		t.Fatal(err)
	}
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetMetadata(md); err != nil {
		t.Fatal(err)
	}
	lt := clients.Lifetimes{AccessToken: time.Hour, ImplicitAccessToken: 30 * time.Minute, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute}
	srv, err := New(Config{
		Issuer:    issuer,
		Lifetimes: lt,
		Clients: []*clients.Client{{
			ID: "spa", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://app.example.com/cb"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthNone, Lifetimes: lt,
		}},
		SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		HMACSecret:   sec.Derive("test hmac", 32),
		CookieKey:    sec.Derive("test cookies", 64),
		SAML:         []*samlsp.Provider{p},
	}, st, km)
	if err != nil {
		t.Fatal(err)
	}
	return &samlFixture{srv: srv, idp: idp}
}

func (f *samlFixture) do(req *http.Request, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

const pendingAuthQuery = "client_id=spa&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&response_type=code&state=s-0123456789"

// start begins a sign-in and returns the binding cookie and request ID.
func (f *samlFixture) start(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	rec := f.do(httptest.NewRequest(http.MethodGet, "/saml/corp/login?auth="+url.QueryEscape(pendingAuthQuery), nil))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	u, _ := url.Parse(rec.Header().Get("Location"))
	raw, err := testsaml.ParseRedirectRequest(u)
	if err != nil {
		t.Fatal(err)
	}
	var req saml.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == samlCookieName {
			return c, req.ID
		}
	}
	t.Fatal("no binding cookie")
	return nil, ""
}

// TestSAMLBindingCookie checks the cookie that ties a response to the
// browser: sent on the IdP's cross-site POST to the ACS, so over https
// SameSite=None with Secure, and over http no SameSite attribute (browsers
// refuse SameSite=None without Secure).
func TestSAMLBindingCookie(t *testing.T) {
	for _, tt := range []struct{ issuer, want string }{
		{"https://auth.example.com", "; HttpOnly; Secure; SameSite=None"},
		{"http://127.0.0.1:4444", "; HttpOnly"},
	} {
		t.Run(tt.issuer, func(t *testing.T) {
			f := newSAMLFixture(t, tt.issuer)
			rec := f.do(httptest.NewRequest(http.MethodGet, "/saml/corp/login", nil))
			if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), f.idp.SSOURL+"?SAMLRequest=") {
				t.Fatalf("login: %d to %q", rec.Code, rec.Header().Get("Location"))
			}
			set := rec.Header().Get("Set-Cookie")
			if !strings.HasPrefix(set, samlCookieName+"=") || !strings.Contains(set, "; Path=/saml/;") || !strings.HasSuffix(set, tt.want) {
				t.Errorf("Set-Cookie: %s\nwant it to end %q", set, tt.want)
			}
			if strings.Contains(rec.Header().Get("Location"), "RelayState") {
				t.Error("a RelayState is sent; the cookie alone binds the request")
			}
		})
	}
}

func TestSAMLLoginPageAndMetadata(t *testing.T) {
	f := newSAMLFixture(t, "https://auth.example.com")
	rec := f.do(httptest.NewRequest(http.MethodGet, "/oauth2/authorize?"+pendingAuthQuery, nil))
	want := `<a class="button secondary" href="/saml/corp/login?auth=client_id%3Dspa%26code_challenge%3D`
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) || !strings.Contains(rec.Body.String(), "Sign in with Corporate SSO") {
		t.Errorf("login page (%d) lacks the SSO button:\n%s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "force=1") {
		t.Error("an ordinary sign-in asks the IdP for ForceAuthn")
	}
	// prompt=login carries over to the IdP (ForceAuthn).
	rec = f.do(httptest.NewRequest(http.MethodGet, "/oauth2/authorize?"+pendingAuthQuery+"&prompt=login", nil))
	if !strings.Contains(rec.Body.String(), "force=1") {
		t.Errorf("prompt=login: the SSO button does not ask for ForceAuthn:\n%s", rec.Body)
	}
	rec = f.do(httptest.NewRequest(http.MethodGet, "/saml/corp/metadata", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/samlmetadata+xml" || !strings.Contains(rec.Body.String(), `entityID="https://auth.example.com/saml/corp/metadata"`) {
		t.Errorf("metadata: %d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	for _, path := range []string{"/saml/other/metadata", "/saml/other/login", "/saml/other/acs"} {
		if rec := f.do(httptest.NewRequest(http.MethodGet, path, nil)); rec.Code != http.StatusNotFound || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
}

func TestSAMLACS(t *testing.T) {
	f := newSAMLFixture(t, "https://auth.example.com")
	cookie, id := f.start(t)
	l := samltest.Login{
		SPEntityID: "https://auth.example.com/saml/corp/metadata", ACS: "https://auth.example.com/saml/corp/acs",
		InResponseTo: id, NameID: "alice",
	}
	el, err := f.idp.SignAssertion(f.idp.Assertion(l))
	if err != nil {
		t.Fatal(err)
	}
	respEl, _ := samltest.ResponseElement(f.idp.Response(l), nil, el)
	resp, _ := samltest.Encode(respEl)
	post := func(c *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/saml/corp/acs", strings.NewReader(url.Values{"SAMLResponse": {resp}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c == nil {
			return f.do(req)
		}
		return f.do(req, c)
	}

	// Without the binding cookie the response answers nothing this
	// browser asked for.
	if rec := post(nil); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "answers no sign-in this browser started") {
		t.Fatalf("without the cookie: %d\n%s", rec.Code, rec.Body)
	}
	rec := post(cookie)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/oauth2/authorize?"+pendingAuthQuery {
		t.Fatalf("ACS: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	var session, binding *http.Cookie
	for _, c := range rec.Result().Cookies() {
		switch c.Name {
		case f.srv.jar.sessionName():
			session = c
		case samlCookieName:
			binding = c
		}
	}
	if session == nil || binding == nil || binding.MaxAge >= 0 {
		t.Fatalf("want a session cookie and the used binding cleared; got %v, %v", session, binding)
	}
	var ls loginSession
	if err := f.srv.jar.open(sessionCookie, session.Value, &ls); err != nil || ls.Subject != "corp:alice" || ls.Username != "corp:alice" {
		t.Errorf("session = %+v, %v", ls, err)
	}
	// The same response again, even with the old cookie: a replay.
	if rec := post(cookie); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "already used") {
		t.Errorf("replay: %d\n%s", rec.Code, rec.Body)
	}
}

func TestSAMLPendingBounded(t *testing.T) {
	f := newSAMLFixture(t, "https://auth.example.com")
	var cookie *http.Cookie
	var ids []string
	for range maxSAMLPending + 2 {
		req := httptest.NewRequest(http.MethodGet, "/saml/corp/login?auth="+url.QueryEscape(pendingAuthQuery), nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := f.do(req)
		for _, c := range rec.Result().Cookies() {
			if c.Name == samlCookieName {
				cookie = c
			}
		}
		u, _ := url.Parse(rec.Header().Get("Location"))
		raw, _ := testsaml.ParseRedirectRequest(u)
		var ar saml.AuthnRequest
		_ = xml.Unmarshal(raw, &ar)
		ids = append(ids, ar.ID)
	}
	if len(cookie.Value) > maxSAMLCookieBytes {
		t.Errorf("cookie of %d bytes", len(cookie.Value))
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookie)
	got := f.srv.samlPendings(req)
	if len(got) != maxSAMLPending || got[len(got)-1].RequestID != ids[len(ids)-1] || got[0].RequestID != ids[2] {
		t.Errorf("pending = %+v, want the newest %d", got, maxSAMLPending)
	}

	// An authorization request too long for a cookie is refused.
	long := pendingAuthQuery + "&scope=" + strings.Repeat("x", 5000)
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/saml/corp/login?auth="+url.QueryEscape(long), nil)); rec.Code != http.StatusBadRequest {
		t.Errorf("long request: %d", rec.Code)
	}
}

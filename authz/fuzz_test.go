package authz

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzTokenEndpoints sends fuzzed bodies, content types and Authorization
// headers to the token, introspection and revocation endpoints: form
// handling (readForm), HTTP Basic credentials and client assertions are
// all parsed from them. Every answer must be a client error or a success,
// never a panic or a 500.
func FuzzTokenEndpoints(f *testing.F) {
	fx := newFixture(f, "opaque")
	const form = "application/x-www-form-urlencoded"
	for _, s := range []struct{ path, ctype, auth, body string }{
		{pathToken, form, "Basic YmlsbGluZzpzZWNyZXQ=", "grant_type=client_credentials&scope=read"},
		{pathToken, form, "", "grant_type=client_credentials&client_id=billing&client_secret=x&client_secret=y"},
		{pathToken, form + "; charset=utf-8", "Basic %%%", "grant_type=password&username=alice&password=pw"},
		{pathToken, form, "", "grant_type=client_credentials&client_id=billing&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJiaWxsaW5nIn0.c2ln"},
		{pathToken, form, "Bearer x", "grant_type=refresh_token&refresh_token=pst_rt_x.y"},
		{pathToken, form, "", "grant_type=authorization_code&code=a.b&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&client_id=firstparty&code_verifier=v"},
		{pathIntrospect, form, "Basic YmlsbGluZzp4", "token=pst_at_abc.def&token_type_hint=access_token"},
		{pathRevoke, form, "Basic Og==", "token=%zz"},
		{pathRevoke, "multipart/form-data; boundary=x", "", "--x\r\n"},
	} {
		f.Add(s.path, s.ctype, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, path, ctype, auth, body string) {
		switch path {
		case pathToken, pathIntrospect, pathRevoke:
		default:
			path = pathToken
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		fx.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s answered %d: %s", path, rec.Code, rec.Body)
		}
	})
}

// FuzzCookiesAndCSRF opens fuzzed session cookies and checks fuzzed CSRF
// tokens against fuzzed CSRF cookies: nothing forged may authenticate,
// nothing may panic.
func FuzzCookiesAndCSRF(f *testing.F) {
	key := sha256.Sum256([]byte("cookie key"))
	key2 := sha256.Sum256([]byte("csrf key"))
	j, err := newCookieJar(append(key[:], key2[:]...), false, time.Hour, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	// The seal's nonce differs in every process (the fuzzer's workers are
	// processes of their own), so what a worker can check is that any
	// session that opens is exactly the one sealed here: GCM lets no
	// mutation of it through.
	sealed := loginSession{Subject: "alice", Expires: 4102444800}
	valid, err := j.seal(sessionCookie, sealed)
	if err != nil {
		f.Fatal(err)
	}
	seed := strings.Repeat("s", 43)
	f.Add(sessionCookie+"="+valid+"; "+csrfCookie+"="+seed, j.csrfFor(seed, nil))
	f.Add(sessionCookie+"="+valid[:len(valid)-2]+"; "+csrfCookie+"=short", "x")
	f.Add(`postern_session="quoted"; postern_session=two`, "")
	f.Fuzz(func(t *testing.T, cookieHeader, token string) {
		req := httptest.NewRequest(http.MethodPost, pathLogin, strings.NewReader(csrfField+"="+token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", cookieHeader)
		_ = req.ParseForm()
		if s := j.session(req); s != nil && !reflect.DeepEqual(*s, sealed) {
			t.Fatalf("a forged session cookie opened: %+v", s)
		}
		if j.checkCSRF(req) {
			c, err := req.Cookie(csrfCookie)
			if err != nil || req.PostForm.Get(csrfField) != j.csrfFor(c.Value, j.session(req)) {
				t.Fatalf("CSRF check passed for a token that is not the cookie's")
			}
		}
		var v map[string]any
		_ = j.open(sessionCookie, token, &v)
	})
}

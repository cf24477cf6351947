package authz

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func (f *fixture) postAs(client, secret string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, pathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(client, secret)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func (f *fixture) passwordGrant(tb testing.TB, user, scope string) tokenResponse {
	rec := f.postAs("mobile", f.secret, url.Values{"grant_type": {"password"}, "username": {user}, "password": {user + "-password"}, "scope": {scope}})
	var tr tokenResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &tr)
	if rec.Code != http.StatusOK || tr.RefreshToken == "" {
		tb.Fatalf("password grant: %d %s", rec.Code, rec.Body)
	}
	return tr
}

// BenchmarkRefreshGrant follows one refresh chain in process: each
// iteration redeems the previous refresh token (one atomic store write).
func BenchmarkRefreshGrant(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	rt := f.passwordGrant(b, "alice", "read").RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		rec := f.postAs("mobile", f.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		var tr tokenResponse
		_ = json.Unmarshal(rec.Body.Bytes(), &tr)
		if rec.Code != http.StatusOK {
			b.Fatalf("refresh: %d %s", rec.Code, rec.Body)
		}
		rt = tr.RefreshToken
	}
}

// BenchmarkCodeFlow runs authorize (signed-in user, trusted client: no
// consent page) and the code exchange with PKCE, in process.
func BenchmarkCodeFlow(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	rec := httptest.NewRecorder()
	fp, _ := f.srv.users.Fingerprint("alice")
	if err := f.srv.jar.startSession(rec, loginSession{Subject: "alice", Username: "alice", CredFP: fp}); err != nil {
		b.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]
	const verifier = "bench-verifier-0123456789-0123456789-0123456789"
	const challenge = "97Zj-g7YTE4g4dDZiilunI1wyoTNGgfDOzmh048JNqA" // S256 of verifier
	q := url.Values{"response_type": {"code"}, "client_id": {"firstparty"}, "redirect_uri": {"https://app.example.com/cb"},
		"scope": {"read"}, "state": {"state-0123456789"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	authURL := pathAuthorize + "?" + q.Encode()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, authURL, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		loc, err := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
			b.Fatalf("authorize: %d %s %s", rec.Code, rec.Header().Get("Location"), rec.Body)
		}
		tok := f.postAs("", "", url.Values{"grant_type": {"authorization_code"}, "client_id": {"firstparty"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {"https://app.example.com/cb"}, "code_verifier": {verifier}})
		if tok.Code != http.StatusOK {
			b.Fatalf("exchange: %d %s", tok.Code, tok.Body)
		}
	}
}

// BenchmarkUserGrants1000 lists a user's 1,000 grants (2,000 live tokens)
// among another user's 2,000: one read transaction through the subject
// index, never a scan of all tokens.
func BenchmarkUserGrants1000(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	// One sign-in per username is checked at a time, so each user's grants
	// are made in a row; the two users run side by side.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for idx, job := range []struct {
		user  string
		count int
	}{{"alice", 1000}, {"bob", 2000}} {
		user, count := job.user, job.count
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range count {
				rec := f.postAs("mobile", f.secret, url.Values{"grant_type": {"password"}, "username": {user}, "password": {user + "-password"}, "scope": {"read"}})
				if rec.Code != http.StatusOK {
					errs[idx] = fmt.Errorf("password grant for %s: %d %s", user, rec.Code, rec.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	grants, err := f.srv.userGrants(ctx, "alice")
	if err != nil || len(grants) != 1000 {
		b.Fatalf("userGrants = %d, %v", len(grants), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.srv.userGrants(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCodeFlowBenchmarkChallenge(t *testing.T) {
	// Keeps BenchmarkCodeFlow's constant honest.
	if got := s256("bench-verifier-0123456789-0123456789-0123456789"); got != "97Zj-g7YTE4g4dDZiilunI1wyoTNGgfDOzmh048JNqA" {
		t.Fatalf("S256 = %s", got)
	}
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

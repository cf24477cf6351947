package authz

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// pageClient is a browser for in-process page tests: it keeps the cookies
// the server sets and sends them back.
type pageClient struct {
	t       *testing.T
	srv     *Server
	cookies map[string]*http.Cookie
}

func newPageClient(t *testing.T, srv *Server) *pageClient {
	return &pageClient{t: t, srv: srv, cookies: map[string]*http.Cookie{}}
}

func (c *pageClient) do(req *http.Request) *httptest.ResponseRecorder {
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	c.srv.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	return rec
}

func (c *pageClient) get(path string) *httptest.ResponseRecorder {
	return c.do(httptest.NewRequest(http.MethodGet, path, nil))
}

func (c *pageClient) post(path string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the CSRF token of the form on a page's body.
func (c *pageClient) csrf(body string) string {
	c.t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF field in:\n%s", body)
	}
	return m[1]
}

// signIn signs in through the login form and returns the session cookie.
func (c *pageClient) signIn(user, pass string) *http.Cookie {
	c.t.Helper()
	page := c.get(pathLogin)
	rec := c.post(pathLogin, url.Values{csrfField: {c.csrf(page.Body.String())}, "username": {user}, "password": {pass}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != pathAccount {
		c.t.Fatalf("sign-in as %s: %d to %q\n%s", user, rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	ck := c.cookies[c.srv.jar.sessionName()]
	if ck == nil {
		c.t.Fatalf("sign-in as %s set no session cookie", user)
	}
	return ck
}

// signedIn reports whether the account page shows, rather than sending the
// browser to sign in.
func (c *pageClient) signedIn() bool {
	c.t.Helper()
	rec := c.get(pathAccount)
	switch {
	case rec.Code == http.StatusOK:
		return true
	case rec.Code == http.StatusSeeOther && rec.Header().Get("Location") == pathLogin:
		return false
	}
	c.t.Fatalf("/account: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	return false
}

// accountForm posts one of the account page's forms.
func (c *pageClient) accountForm(path string) *httptest.ResponseRecorder {
	c.t.Helper()
	page := c.get(pathAccount)
	if page.Code != http.StatusOK {
		c.t.Fatalf("/account: %d", page.Code)
	}
	return c.post(path, url.Values{csrfField: {c.csrf(page.Body.String())}})
}

func openSession(t *testing.T, srv *Server, ck *http.Cookie) loginSession {
	t.Helper()
	var ls loginSession
	if err := srv.jar.open(sessionCookie, ck.Value, &ls); err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestStartSessionGivesEachSessionAnID(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	seen := map[string]bool{}
	for range 3 {
		ls := openSession(t, f.srv, newPageClient(t, f.srv).signIn("alice", "alice-password"))
		if len(ls.SID) != 22 || seen[ls.SID] {
			t.Errorf("SID %q: want 22 base64url characters (16 bytes), new every time", ls.SID)
		}
		seen[ls.SID] = true
	}
}

func TestLogoutRevokesSessionID(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	alice := newPageClient(t, f.srv)
	stolen := alice.signIn("alice", "alice-password")
	ls := openSession(t, f.srv, stolen)

	rec := alice.accountForm(pathLogout)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != pathLogin {
		t.Fatalf("logout: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if alice.cookies[f.srv.jar.sessionName()] != nil {
		t.Error("logout left the session cookie in the browser")
	}
	thief := newPageClient(t, f.srv)
	thief.cookies[stolen.Name] = stolen
	if thief.signedIn() {
		t.Fatal("a copy of the signed-out cookie still opens the account page")
	}

	// The revocation lasts exactly as long as the session would have.
	ctx := t.Context()
	if revoked, err := f.store.SessionRevoked(ctx, ls.SID); err != nil || !revoked {
		t.Fatalf("SessionRevoked = %v, %v", revoked, err)
	}
	exp := time.Unix(ls.Expires, 0)
	if n, err := f.store.DeleteExpired(ctx, exp); err != nil || n != 0 {
		t.Errorf("DeleteExpired(session expiry) = %d, %v; want the revocation kept until then", n, err)
	}
	if n, err := f.store.DeleteExpired(ctx, exp.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Errorf("DeleteExpired(after session expiry) = %d, %v; want the revocation swept", n, err)
	}

	events, _ := f.store.ListEvents(ctx, "alice", 10)
	if len(events) < 1 || events[0].Type != "logout" {
		t.Errorf("events = %+v, want logout first", events)
	}
}

// stepClock advances by a microsecond on every reading: every instant
// differs, and a test's instants share one second.
func stepClock() func() time.Time {
	start := time.Now().Truncate(time.Second)
	var n atomic.Int64
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * time.Microsecond) }
}

func TestSignOutEverywhere(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	f.srv.cfg.Now = stepClock()
	f.srv.jar.now = f.srv.cfg.Now
	laptop, phone, bob := newPageClient(t, f.srv), newPageClient(t, f.srv), newPageClient(t, f.srv)
	laptop.signIn("alice", "alice-password")
	phone.signIn("alice", "alice-password")
	bob.signIn("bob", "bob-password")

	rec := laptop.accountForm(pathAccount + "/sessions/end-all")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != pathLogin {
		t.Fatalf("end-all: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if laptop.signedIn() || phone.signedIn() {
		t.Error("a session of alice survived signing out everywhere")
	}
	if !bob.signedIn() {
		t.Error("bob was signed out too")
	}
	// Signing in again within the same second is a new session, after the
	// instant the others ended.
	phone.signIn("alice", "alice-password")
	if !phone.signedIn() {
		t.Fatal("a sign-in after signing out everywhere does not hold")
	}
	page := phone.get(pathAccount).Body.String()
	if !strings.Contains(page, "You signed out on every device") {
		t.Errorf("the account page does not list the event:\n%s", page)
	}
	if !strings.Contains(page, `action="/account/sessions/end-all"`) || !strings.Contains(page, ">Sign out everywhere</button>") {
		t.Errorf("the account page has no sign-out-everywhere button:\n%s", page)
	}
}

func TestSignOutEverywhereNeedsCSRF(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	alice := newPageClient(t, f.srv)
	alice.signIn("alice", "alice-password")
	rec := alice.post(pathAccount+"/sessions/end-all", url.Values{csrfField: {"forged"}})
	if rec.Code != http.StatusForbidden {
		t.Errorf("end-all with a bad CSRF token: %d, want 403", rec.Code)
	}
	if rec := alice.get(pathAccount + "/sessions/end-all"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET end-all: %d, want 405", rec.Code)
	}
	if !alice.signedIn() {
		t.Error("a refused end-all signed alice out")
	}
	if at, _ := f.store.SubjectSessionsEndedAt(t.Context(), "alice"); !at.IsZero() {
		t.Errorf("a refused end-all was recorded at %v", at)
	}
}

// failingStore fails the session methods named in fail.
type failingStore struct {
	storage.Store
	fail map[string]bool
}

var errStoreDown = errors.New("store down (test)")

func (s *failingStore) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if s.fail["SessionRevoked"] {
		return false, errStoreDown
	}
	return s.Store.SessionRevoked(ctx, id)
}

func (s *failingStore) SubjectSessionsEndedAt(ctx context.Context, subject string) (time.Time, error) {
	if s.fail["SubjectSessionsEndedAt"] {
		return time.Time{}, errStoreDown
	}
	return s.Store.SubjectSessionsEndedAt(ctx, subject)
}

func (s *failingStore) RevokeSession(ctx context.Context, id string, until time.Time) error {
	if s.fail["RevokeSession"] {
		return errStoreDown
	}
	return s.Store.RevokeSession(ctx, id, until)
}

func TestSessionCheckFailsClosed(t *testing.T) {
	for _, method := range []string{"SessionRevoked", "SubjectSessionsEndedAt"} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, FormatOpaque)
			var logs bytes.Buffer
			f.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
			alice := newPageClient(t, f.srv)
			alice.signIn("alice", "alice-password")
			fs := &failingStore{Store: f.store, fail: map[string]bool{method: true}}
			f.srv.store = fs
			if alice.signedIn() {
				t.Errorf("with %s failing the session was honoured", method)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), errStoreDown.Error()) {
				t.Errorf("no warning logged:\n%s", logs.String())
			}
			fs.fail = nil
			if !alice.signedIn() {
				t.Error("the session did not come back with the store")
			}
		})
	}
}

func TestLogoutStoreFailure(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	alice := newPageClient(t, f.srv)
	alice.signIn("alice", "alice-password")
	page := alice.get(pathAccount)
	f.srv.store = &failingStore{Store: f.store, fail: map[string]bool{"RevokeSession": true}}
	rec := alice.post(pathLogout, url.Values{csrfField: {alice.csrf(page.Body.String())}})
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "could not record it") {
		t.Errorf("logout with the store down: %d\n%s", rec.Code, rec.Body)
	}
	if alice.cookies[f.srv.jar.sessionName()] != nil {
		t.Error("the browser keeps its session cookie")
	}
}

func TestSessionWithoutIDRefused(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	now := time.Now()
	fp, _ := f.srv.users.Fingerprint("bob")
	ls := loginSession{Subject: "bob", Username: "bob", CredFP: fp, AuthTime: now.UnixNano(), Expires: now.Add(time.Hour).Unix()}
	v, err := f.srv.jar.seal(sessionCookie, ls)
	if err != nil {
		t.Fatal(err)
	}
	bob := newPageClient(t, f.srv)
	bob.cookies[f.srv.jar.sessionName()] = &http.Cookie{Name: f.srv.jar.sessionName(), Value: v}
	if bob.signedIn() {
		t.Error("a session cookie without a session ID was honoured: it could never be revoked")
	}
	// The same cookie with an ID is good: the ID is what was missing.
	ls.SID = newSessionID()
	if v, err = f.srv.jar.seal(sessionCookie, ls); err != nil {
		t.Fatal(err)
	}
	bob.cookies[f.srv.jar.sessionName()] = &http.Cookie{Name: f.srv.jar.sessionName(), Value: v}
	if !bob.signedIn() {
		t.Error("the control cookie with a session ID was refused")
	}
}

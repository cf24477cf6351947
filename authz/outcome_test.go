package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
)

// outcomeEnv is a server on a real bbolt store, seen through hookStore so a
// test can play a concurrent request at the moment it matters.
type outcomeEnv struct {
	srv   *Server
	store *hookStore
}

const (
	envSecret   = "outcome-test-client-secret"
	webappRedir = "https://app.example.com/cb"
)

func newOutcomeEnv(t *testing.T, throttle identity.ThrottleOptions, opts ...func(*Config)) *outcomeEnv {
	t.Helper()
	st, sec, km := newStoreAndKeys(t)
	hs := &hookStore{Store: st}
	lt := clients.Lifetimes{AccessToken: time.Hour, ImplicitAccessToken: 30 * time.Minute, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute}
	client := func(id string, grants ...string) *clients.Client {
		return &clients.Client{ID: id, SecretHash: []byte(envSecret), GrantTypes: grants, Trusted: true,
			RedirectURIs: []string{webappRedir}, Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt}
	}
	cfg := Config{
		Issuer:    "https://auth.example.com",
		Lifetimes: lt,
		Clients: []*clients.Client{
			client("billing", clients.GrantClientCredentials),
			client("mobile", clients.GrantPassword, clients.GrantRefreshToken),
			client("kiosk", clients.GrantPassword),
			client("webapp", clients.GrantAuthorizationCode, clients.GrantRefreshToken),
		},
		Users: identity.NewDirectory([]identity.User{
			{Username: "alice", Password: "alice-password", Claims: map[string]string{"email": "alice@example.com"}},
		}, identity.NewThrottle(throttle), passhash.NewLimiter(0, nil)),
		SecretHasher: plainHasher{},
		HMACSecret:   sec.Derive("test hmac", 32),
		CookieKey:    sec.Derive("test cookies", 64),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := New(cfg, hs, km)
	if err != nil {
		t.Fatal(err)
	}
	return &outcomeEnv{srv: srv, store: hs}
}

// plainHasher compares client secrets as they are: these tests are about
// outcomes, not secret hashing.
type plainHasher struct{}

func (plainHasher) Hash(_ context.Context, data []byte) ([]byte, error) { return data, nil }
func (plainHasher) Compare(_ context.Context, hash, data []byte) error {
	if string(hash) != string(data) {
		return errors.New("secret mismatch")
	}
	return nil
}

// hookStore runs a hook before Redeem or DeleteToken reaches the store, and
// can fail the writes a token request makes (failWrites).
type hookStore struct {
	storage.Store
	mu           sync.Mutex
	beforeRedeem func(kind storage.Kind, sig string)
	beforeDelete func(kind storage.Kind, sig string)
	writeErr     error
	retryOfErr   error // RetryOf fails with it when set
	grantsEnded  int   // RevokeGrant calls that reached the store
}

func (h *hookStore) revokeGrantCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.grantsEnded
}

func (h *hookStore) RetryOf(ctx context.Context, kind storage.Kind, sig string) (storage.Retry, error) {
	h.mu.Lock()
	err := h.retryOfErr
	h.mu.Unlock()
	if err != nil {
		return storage.Retry{}, err
	}
	return h.Store.RetryOf(ctx, kind, sig)
}

// failWrites makes every write fail with err (nil: writes work again).
func (h *hookStore) failWrites(err error) {
	h.mu.Lock()
	h.writeErr = err
	h.mu.Unlock()
}

func (h *hookStore) failing() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeErr
}

func (h *hookStore) Redeem(ctx context.Context, kind storage.Kind, sig string, issue []storage.Token, retry *storage.Retry) (storage.Token, error) {
	h.mu.Lock()
	hook := h.beforeRedeem
	h.beforeRedeem = nil // once: the hook may redeem through the store itself
	h.mu.Unlock()
	if hook != nil {
		hook(kind, sig)
	}
	if err := h.failing(); err != nil {
		return storage.Token{}, err
	}
	return h.Store.Redeem(ctx, kind, sig, issue, retry)
}

// loseNextRedemption makes the next redemption lose to a concurrent
// request that redeems the same token first.
func (h *hookStore) loseNextRedemption() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeRedeem = func(kind storage.Kind, sig string) {
		_, _ = h.Store.Redeem(context.Background(), kind, sig, nil, nil)
	}
}

// revokeDuringNextRedemption makes a concurrent reuse revoke the grant of
// the token the next redemption is about to redeem.
func (h *hookStore) revokeDuringNextRedemption() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeRedeem = func(kind storage.Kind, sig string) {
		tok, _ := h.GetToken(context.Background(), kind, sig)
		_, _ = h.Store.RevokeGrant(context.Background(), tok.RequestID)
	}
}

func (h *hookStore) DeleteToken(ctx context.Context, kind storage.Kind, sig string) error {
	h.mu.Lock()
	hook := h.beforeDelete
	h.mu.Unlock()
	if hook != nil {
		hook(kind, sig)
	}
	if err := h.failing(); err != nil {
		return err
	}
	return h.Store.DeleteToken(ctx, kind, sig)
}

func (h *hookStore) CreateToken(ctx context.Context, t storage.Token) error {
	if err := h.failing(); err != nil {
		return err
	}
	return h.Store.CreateToken(ctx, t)
}

func (h *hookStore) RevokeGrant(ctx context.Context, requestID string) (int, error) {
	h.mu.Lock()
	h.grantsEnded++
	h.mu.Unlock()
	if err := h.failing(); err != nil {
		return 0, err
	}
	return h.Store.RevokeGrant(ctx, requestID)
}

func (h *hookStore) UseOnce(ctx context.Context, namespace, id string, exp time.Time) error {
	if err := h.failing(); err != nil {
		return err
	}
	return h.Store.UseOnce(ctx, namespace, id, exp)
}

func (h *hookStore) AppendEvent(ctx context.Context, e storage.Event) error {
	if err := h.failing(); err != nil {
		return err
	}
	return h.Store.AppendEvent(ctx, e)
}

func tokenRequest(form url.Values, clientID string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, pathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientID != "" {
		req.SetBasicAuth(clientID, envSecret)
	}
	return req
}

func (e *outcomeEnv) post(form url.Values, clientID string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, tokenRequest(form, clientID))
	return rec
}

// exchange runs a token request through fosite the way handleToken does and
// returns fosite's error, to see what reaches tokenOutcome.
func (e *outcomeEnv) exchange(form url.Values, clientID string) error {
	req := tokenRequest(form, clientID)
	if err := req.ParseForm(); err != nil {
		return err
	}
	sess := newSession()
	sess.IP = "192.0.2.1"
	ctx := context.Background()
	ar, err := e.srv.provider.NewAccessRequest(ctx, req, sess)
	if err != nil {
		return err
	}
	grantRequested(ar, authenticatedClient(ar))
	_, err = e.srv.provider.NewAccessResponse(ctx, ar)
	return err
}

type tokenBody struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func decodeToken(t *testing.T, rec *httptest.ResponseRecorder) tokenBody {
	t.Helper()
	var b tokenBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("token response %d %q: %v", rec.Code, rec.Body, err)
	}
	return b
}

// signIn runs the password grant for alice and returns the refresh token.
func (e *outcomeEnv) signIn(t *testing.T) string {
	t.Helper()
	rec := e.post(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, "mobile")
	b := decodeToken(t, rec)
	if rec.Code != http.StatusOK || b.RefreshToken == "" {
		t.Fatalf("password grant: %d %s", rec.Code, rec.Body)
	}
	return b.RefreshToken
}

// issueCode stores an authorization code for alice and webapp, as the
// authorization endpoint would after consent.
func (e *outcomeEnv) issueCode(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	req := fosite.NewRequest()
	req.Client = e.srv.clients["webapp"]
	req.Form = url.Values{"redirect_uri": {webappRedir}}
	req.GrantScope("read")
	sess := newSession()
	sess.Subject, sess.Username = "alice", "alice"
	sess.CredFP, _ = e.srv.users.Fingerprint("alice")
	req.Session = sess
	code, sig, err := newPrefixedStrategy(e.srv.fosite).GenerateAuthorizeCode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.fs.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
		t.Fatal(err)
	}
	return code
}

func codeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedir}}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

func (e *outcomeEnv) events(t *testing.T, typ string) int {
	t.Helper()
	evs, err := e.store.ListEvents(context.Background(), "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// outcomeCases are the token requests whose outcome fosite learns from
// Postern's store or sign-in. Each prepares its request (and may arm a
// store hook that plays a concurrent request); then the same request is
// checked twice, on fresh servers: what fosite returns must still hold the
// typed error (errors.As), and the HTTP answer and its side effects must be
// those of the outcome.
var outcomeCases = []struct {
	name    string
	throttl identity.ThrottleOptions
	prepare func(t *testing.T, e *outcomeEnv) (url.Values, string)
	typed   func(error) bool
	status  int
	code    string
	event   string // audit event recorded for alice
	after   func(t *testing.T, e *outcomeEnv, rec *httptest.ResponseRecorder)
}{{
	name: "refresh token reused",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		rt := e.signIn(t)
		if rec := e.post(refreshForm(rt), "mobile"); rec.Code != http.StatusOK {
			t.Fatalf("first refresh: %d %s", rec.Code, rec.Body)
		}
		return refreshForm(rt), "mobile"
	},
	typed:  isA[*reuseError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "refresh_token_reuse",
}, {
	name: "refresh token reused while a concurrent reuse revokes the grant",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		rt := e.signIn(t)
		if rec := e.post(refreshForm(rt), "mobile"); rec.Code != http.StatusOK {
			t.Fatalf("first refresh: %d %s", rec.Code, rec.Body)
		}
		sig := newPrefixedStrategy(e.srv.fosite).RefreshTokenSignature(context.Background(), rt)
		old, err := e.store.GetToken(context.Background(), storage.RefreshToken, sig)
		if !errors.Is(err, storage.ErrInactive) {
			t.Fatalf("used refresh token: %v", err)
		}
		// fosite deletes the used token before revoking its grant; the
		// other request got there first.
		e.store.beforeDelete = func(storage.Kind, string) {
			_, _ = e.store.Store.RevokeGrant(context.Background(), old.RequestID)
		}
		return refreshForm(rt), "mobile"
	},
	typed:  isA[*reuseError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "refresh_token_reuse",
}, {
	name: "refresh loses a concurrent redemption",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		rt := e.signIn(t)
		e.store.loseNextRedemption()
		return refreshForm(rt), "mobile"
	},
	typed:  isA[*reuseError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "refresh_token_reuse",
}, {
	name: "refresh token revoked while being redeemed",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		rt := e.signIn(t)
		e.store.revokeDuringNextRedemption()
		return refreshForm(rt), "mobile"
	},
	typed:  isA[*goneError],
	status: http.StatusBadRequest, code: "invalid_grant",
}, {
	name: "authorization code reused",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		code := e.issueCode(t)
		if rec := e.post(codeForm(code), "webapp"); rec.Code != http.StatusOK {
			t.Fatalf("first redemption: %d %s", rec.Code, rec.Body)
		}
		return codeForm(code), "webapp"
	},
	typed:  isA[*reuseError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "authorization_code_reuse",
}, {
	name: "authorization code loses a concurrent redemption",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		code := e.issueCode(t)
		e.store.loseNextRedemption()
		return codeForm(code), "webapp"
	},
	typed:  isA[*reuseError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "authorization_code_reuse",
}, {
	name: "authorization code revoked while being redeemed",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		code := e.issueCode(t)
		e.store.revokeDuringNextRedemption()
		return codeForm(code), "webapp"
	},
	typed:  isA[*goneError],
	status: http.StatusBadRequest, code: "invalid_grant",
}, {
	name: "wrong password",
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		return url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}}, "mobile"
	},
	typed:  isA[*badCredentialsError],
	status: http.StatusBadRequest, code: "invalid_grant", event: "login_failed",
}, {
	name:    "password sign-ins throttled",
	throttl: identity.ThrottleOptions{UserFailures: 1, Base: time.Hour, Max: 2 * time.Hour, Now: func() time.Time { return time.Unix(1e9, 0) }},
	prepare: func(t *testing.T, e *outcomeEnv) (url.Values, string) {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}}
		if rec := e.post(form, "mobile"); rec.Code != http.StatusBadRequest {
			t.Fatalf("first failure: %d %s", rec.Code, rec.Body)
		}
		form.Set("password", "alice-password")
		return form, "mobile"
	},
	typed:  isA[*throttledError],
	status: http.StatusTooManyRequests, code: "invalid_grant",
	after: func(t *testing.T, e *outcomeEnv, rec *httptest.ResponseRecorder) {
		if got := rec.Header().Get("Retry-After"); got != "3601" {
			t.Errorf("Retry-After = %q, want 3601", got)
		}
	},
}}

func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func TestOutcomesSurviveFosite(t *testing.T) {
	for _, c := range outcomeCases {
		t.Run(c.name, func(t *testing.T) {
			e := newOutcomeEnv(t, c.throttl)
			form, client := c.prepare(t, e)
			if err := e.exchange(form, client); !c.typed(err) {
				t.Fatalf("fosite returned %v (%T); the typed outcome is not in its chain", err, err)
			}

			e = newOutcomeEnv(t, c.throttl)
			form, client = c.prepare(t, e)
			before := 0
			if c.event != "" {
				before = e.events(t, c.event)
			}
			rec := e.post(form, client)
			if b := decodeToken(t, rec); rec.Code != c.status || b.Error != c.code {
				t.Fatalf("answer %d %q (%s), want %d %q", rec.Code, b.Error, b.Description, c.status, c.code)
			}
			if c.event != "" {
				if n := e.events(t, c.event); n != before+1 {
					t.Errorf("%d new %s events, want 1", n-before, c.event)
				}
			}
			if c.after != nil {
				c.after(t, e, rec)
			}
		})
	}
}

// TestReuseRevokesGrant: a reused refresh token ends every token of its
// grant, the live ones included.
func TestReuseRevokesGrant(t *testing.T) {
	e := newOutcomeEnv(t, identity.ThrottleOptions{})
	rt := e.signIn(t)
	rec := e.post(refreshForm(rt), "mobile")
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	live := decodeToken(t, rec).RefreshToken
	if rec := e.post(refreshForm(rt), "mobile"); rec.Code != http.StatusBadRequest {
		t.Fatalf("reuse: %d %s", rec.Code, rec.Body)
	}
	if rec := e.post(refreshForm(live), "mobile"); rec.Code != http.StatusBadRequest {
		t.Errorf("the grant's live refresh token still works after reuse: %d %s", rec.Code, rec.Body)
	}
}

// TestPasswordGrantSession: the password grant records who signed in, from
// where, and issues a refresh token only to clients registered for the
// refresh_token grant.
func TestPasswordGrantSession(t *testing.T) {
	for _, c := range []struct {
		client      string
		wantRefresh bool
	}{{"mobile", true}, {"kiosk", false}} {
		t.Run(c.client, func(t *testing.T) {
			e := newOutcomeEnv(t, identity.ThrottleOptions{})
			req := tokenRequest(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, c.client)
			req.RemoteAddr = "198.51.100.7:4711"
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			b := decodeToken(t, rec)
			if rec.Code != http.StatusOK {
				t.Fatalf("password grant: %d %s", rec.Code, rec.Body)
			}
			if (b.RefreshToken != "") != c.wantRefresh {
				t.Errorf("refresh token issued: %v, want %v", b.RefreshToken != "", c.wantRefresh)
			}
			toks, err := e.store.SubjectTokens(context.Background(), "alice")
			if err != nil || len(toks) == 0 {
				t.Fatalf("SubjectTokens = %v, %v", toks, err)
			}
			r, err := e.srv.fs.decode(context.Background(), toks[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			sess := r.GetSession().(*Session)
			if sess.Username != "alice" || sess.IP != "198.51.100.7" || sess.GrantStart.IsZero() || sess.CredFP == "" ||
				sess.Claims["email"] != "alice@example.com" {
				t.Errorf("session = %+v", sess)
			}
		})
	}
}

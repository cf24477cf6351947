package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
)

// postgresDSN is the database the replica tests may create schemas in. As
// in storage/postgres: skipped outside CI without one, a failure in CI.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("POSTERN_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("POSTERN_TEST_POSTGRES_DSN is not set, but CI is: .ci/run should have started PostgreSQL and set it")
		}
		t.Skip("PostgreSQL replica tests skipped: set POSTERN_TEST_POSTGRES_DSN (.ci/run starts a throwaway cluster)")
	}
	return dsn
}

// freshPostgresSchema creates an empty schema for one test and returns the
// DSN that puts postern's tables in it.
func freshPostgresSchema(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "e2e_" + hex.EncodeToString(b[:])
	pgExec(t, dsn, `CREATE SCHEMA `+name)
	t.Cleanup(func() { pgExec(t, dsn, `DROP SCHEMA `+name+` CASCADE`) })
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("POSTERN_TEST_POSTGRES_DSN must be a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

const mobileSecret = "mobile-dev-secret-0123456789"

// replicaConfig: an introspecting machine client "rs", a trusted first-party
// "mobile" client (password grant, refresh tokens), a public SPA for the
// code flow, users alice and bob (and carol, whom a test throttles); keys
// reloaded every second.
func replicaConfig(t *testing.T) (path, rsSecret string) {
	t.Helper()
	secret, hash := newClientSecret(t)
	return writeConfig(t, fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "keys": {"reload_interval": "1s"},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "mobile", "client_secret": %q, "trusted": true, "grant_types": ["password", "refresh_token"], "scope": "read write"},
    {"client_id": "spa", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
     "redirect_uris": [%q], "scope": "read"}
  ],
  "users": [{"username": "alice", "password": "alice-password"}, {"username": "bob", "password": "bob-password"},
    {"username": "carol", "password": "carol-password"}]
}`, hash, mobileSecret, callbackURL)), secret
}

// replicas is two `postern serve` processes on one database, each with its
// own data directory and the harness's shared POSTERN_SECRET.
type replicas struct {
	a, b     *server
	cfg, dsn string
	rsSecret string
}

func startReplicas(t *testing.T, dsn string) *replicas {
	t.Helper()
	cfg, rs := replicaConfig(t)
	r := &replicas{cfg: cfg, dsn: dsn, rsSecret: rs}
	r.a = startServer(t, cfg, "", "--store", dsn)
	r.b = startServer(t, cfg, "", "--store", dsn)
	return r
}

func (r *replicas) mobile(srv *server) *oauth2.Config {
	return &oauth2.Config{ClientID: "mobile", ClientSecret: mobileSecret, Scopes: []string{"read", "write"},
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

func (r *replicas) introspect(t *testing.T, srv *server, token string) map[string]any {
	t.Helper()
	resp, body := postForm(t, srv.URL+"/oauth2/introspect", url.Values{"token": {token}}, "rs", r.rsSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect at %s: status %d: %v", srv.URL, resp.StatusCode, body)
	}
	return body
}

func (r *replicas) password(t *testing.T, srv *server) *oauth2.Token {
	t.Helper()
	tok, err := r.mobile(srv).PasswordCredentialsToken(context.Background(), "bob", "bob-password")
	if err != nil {
		t.Fatalf("password grant at %s: %v", srv.URL, err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("password grant for mobile returned no refresh token")
	}
	return tok
}

// refreshRaw presents a refresh token and returns the status and the answer
// as they arrived.
func refreshRaw(c *http.Client, srv *server, rt string) (status int, body refreshBody, err error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, body, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mobile", mobileSecret)
	resp, err := c.Do(req)
	if err != nil {
		return 0, body, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body, nil
}

// refreshBody is what a refresh answers, success or error.
type refreshBody struct {
	Error        string `json:"error"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func TestPostgresReplicas(t *testing.T) {
	r := startReplicas(t, freshPostgresSchema(t, postgresDSN(t)))
	ctx := context.Background()

	t.Run("TokenFromOneIntrospectsOnOther", func(t *testing.T) {
		tok := r.password(t, r.a)
		got := r.introspect(t, r.b, tok.AccessToken)
		if got["active"] != true || got["sub"] != "bob" || got["client_id"] != "mobile" {
			t.Errorf("token from A introspected on B: %v, want active for bob via mobile", got)
		}
	})

	t.Run("CodeFromOneRedeemedOnOther", func(t *testing.T) {
		conf := &oauth2.Config{ClientID: "spa", Scopes: []string{"read"}, RedirectURL: callbackURL,
			Endpoint: oauth2.Endpoint{AuthURL: r.a.URL + "/oauth2/authorize", TokenURL: r.b.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		verifier := oauth2.GenerateVerifier()
		br := newBrowser(t)
		p := br.login(r.a.URL, br.get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier))), "alice", "alice-password")
		// spa is not trusted: the user must be asked.
		if !isConsentPage(p) {
			t.Fatalf("untrusted spa: no consent page (status %d, location %q)\n%s", p.status, p.location, p.body)
		}
		p = br.consent(r.a.URL, p, "allow", false)
		tok, err := conf.Exchange(ctx, callback(t, p).Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("code issued by A, exchanged at B: %v", err)
		}
		if got := r.introspect(t, r.a, tok.AccessToken); got["active"] != true || got["sub"] != "alice" {
			t.Errorf("token from B introspected on A: %v", got)
		}
	})

	t.Run("RevokeOnOneInactiveOnOther", func(t *testing.T) {
		tok := r.password(t, r.a)
		if got := r.introspect(t, r.b, tok.AccessToken); got["active"] != true {
			t.Fatalf("fresh token inactive on B: %v", got)
		}
		resp, _ := postForm(t, r.a.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "mobile", mobileSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke on A: status %d", resp.StatusCode)
		}
		// B's token cache hears of it through LISTEN/NOTIFY: within a
		// second (issue 12), polled.
		gwEventually(t, time.Second, "token revoked on A inactive on B", func() bool {
			return r.introspect(t, r.b, tok.AccessToken)["active"] == false
		})
	})

	t.Run("GatewayFedByOtherReplicaRefuses", func(t *testing.T) {
		backend := startEchoBackend(t)
		gw := startGateway(t, fmt.Sprintf(`{
  "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "issuer": %q,
  "client_id": "rs", "client_secret": "${RS_SECRET}",
  "cache": {"ttl": "1h", "negative_ttl": "1s"},
  "routes": [{"path_prefix": "/api", "upstream": %q, "scopes": ["read"]}]
}`, r.b.URL, backend.URL), "RS_SECRET="+r.rsSecret)
		waitFeedConnected(t, gw)
		tok := r.password(t, r.a)
		passes(t, gw, "/api/x", tok.AccessToken)
		resp, _ := postForm(t, r.a.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "mobile", mobileSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke on A: status %d", resp.StatusCode)
		}
		// B hears of A's revocation through the database within its poll
		// (1s), then its gateway at once.
		refusedWithin(t, gw, "/api/x", tok.AccessToken, 3*time.Second)
	})

	t.Run("RefreshRetriedOnOtherThenReuse", func(t *testing.T) {
		first := r.password(t, r.a)
		next, err := r.mobile(r.a).TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if err != nil {
			t.Fatalf("refresh on A: %v", err)
		}
		// The answer was lost: the retry on B, within the window and with
		// next unused, gets the very same pair.
		again, err := r.mobile(r.b).TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if err != nil {
			t.Fatalf("retry on B: %v", err)
		}
		if again.AccessToken != next.AccessToken || again.RefreshToken != next.RefreshToken {
			t.Fatalf("retry on B answered another pair")
		}
		// Once next is used, the first token is reuse, whichever replica sees it.
		newest, err := r.mobile(r.a).TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if err != nil {
			t.Fatalf("refresh with the successor on A: %v", err)
		}
		_, err = r.mobile(r.b).TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if !isOAuthError(err, "invalid_grant") {
			t.Fatalf("used refresh token replayed on B after its successor was used: %v, want invalid_grant", err)
		}
		for _, srv := range []*server{r.a, r.b} {
			for name, tk := range map[string]string{"access": newest.AccessToken, "refresh": newest.RefreshToken} {
				// A replica's token cache hears of it within a second.
				gwEventually(t, time.Second, "newest "+name+" token inactive at "+srv.URL+" after the replay on B", func() bool {
					return r.introspect(t, srv, tk)["active"] == false
				})
			}
		}
	})

	t.Run("ConcurrentRefreshesAcrossReplicas", func(t *testing.T) {
		rt := r.password(t, r.a).RefreshToken
		const n = 50
		c := &http.Client{Timeout: 15 * time.Second}
		statuses := make([]int, n)
		bodies := make([]refreshBody, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			srv := r.a
			if i%2 == 1 {
				srv = r.b
			}
			wg.Go(func() {
				<-start
				statuses[i], bodies[i], errs[i] = refreshRaw(c, srv, rt)
			})
		}
		close(start)
		wg.Wait()
		// One redeems the token; every other gets its answer (the retry
		// window), none an error, none another pair: one chain.
		for i := range n {
			switch {
			case errs[i] != nil:
				t.Errorf("refresh %d: %v", i, errs[i])
			case statuses[i] != http.StatusOK || bodies[i].AccessToken == "":
				t.Errorf("refresh %d: status %d %q, want 200", i, statuses[i], bodies[i].Error)
			case bodies[i] != bodies[0]:
				t.Errorf("refresh %d answered another pair than refresh 0", i)
			}
		}
		if status, body, err := refreshRaw(c, r.b, bodies[0].RefreshToken); err != nil || status != http.StatusOK {
			t.Errorf("the one successor does not refresh: %d %q %v", status, body.Error, err)
		}
	})

	t.Run("RotatedKeyPublishedByBoth", func(t *testing.T) {
		before := jwksKids(t, r.a)
		if b := jwksKids(t, r.b); !slices.Equal(before, b) || len(before) == 0 {
			t.Fatalf("replicas publish different key sets before rotation: %v and %v", before, b)
		}
		// With PostgreSQL nothing locks the store: rotate while both run.
		out, errOut, code := runPostern(t, "", "keys", "rotate", "--config", r.cfg, "--store", r.dsn, "--data", t.TempDir())
		if code != 0 {
			t.Fatalf("postern keys rotate: exit %d:\n%s%s", code, out, errOut)
		}
		deadline := time.Now().Add(10 * time.Second) // reload_interval is 1s
		for _, srv := range []*server{r.a, r.b} {
			for {
				kids := jwksKids(t, srv)
				if len(kids) == len(before)+1 && containsAllKids(kids, before) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s publishes %v 10s after rotation, want the new key beside %v", srv.URL, kids, before)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !slices.Equal(jwksKids(t, r.a), jwksKids(t, r.b)) {
			t.Errorf("replicas publish different key sets after rotation")
		}
	})

	// Five wrong passwords spread over both replicas pause the username on
	// both: with counters per process neither would have seen five. The
	// first pause is 1s, so the checks right after the fifth failure fall
	// inside it.
	t.Run("LoginThrottleSharedAcrossReplicas", func(t *testing.T) {
		grant := func(srv *server, pw string) (*http.Response, map[string]any) {
			return postForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {pw}}, "mobile", mobileSecret)
		}
		srvs := []*server{r.a, r.b}
		for i := range 5 {
			resp, body := grant(srvs[i%2], fmt.Sprintf("wrong-%d", i))
			wantOAuthError(t, fmt.Sprintf("wrong password #%d at replica %d", i+1, i%2), resp, body, http.StatusBadRequest, "invalid_grant")
		}
		fifth := time.Now()
		for i, srv := range srvs {
			resp, body := grant(srv, "carol-password")
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("6th attempt (right password) at replica %d, %v after the 5th failure: status %d %v, want 429", i, time.Since(fifth), resp.StatusCode, body)
			}
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("6th attempt at replica %d: Retry-After %q, want a positive number of seconds", i, resp.Header.Get("Retry-After"))
			}
			if body["access_token"] != nil {
				t.Fatalf("tokens issued at replica %d to a throttled username", i)
			}
		}
		// The login form of either replica shares the counter too.
		conf := &oauth2.Config{ClientID: "spa", Scopes: []string{"read"}, RedirectURL: callbackURL,
			Endpoint: oauth2.Endpoint{AuthURL: r.b.URL + "/oauth2/authorize"}}
		br := newBrowser(t)
		p := br.login(r.b.URL, br.get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), "carol", "carol-password")
		if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
			t.Errorf("login form at replica 1, %v after the 5th failure: status %d Retry-After %q, want 429 with Retry-After", time.Since(fifth), p.status, p.header.Get("Retry-After"))
		}
	})
}

func jwksKids(t *testing.T, srv *server) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(getBytes(t, srv.URL+"/.well-known/jwks.json"), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func containsAllKids(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// outageCluster is the PostgreSQL cluster .ci/run starts for this test
// alone, since stopping it would break every other test using a database.
type outageCluster struct {
	dsn, pgCtl, pgData string
}

func (c outageCluster) ctl(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.pgCtl, append([]string{"-D", c.pgData}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

func (c outageCluster) stop(t *testing.T) { c.ctl(t, "stop", "-m", "fast", "-w") }

// start sends the server's log to a file: pg_ctl would otherwise hand it
// our pipe and keep it open.
func (c outageCluster) start(t *testing.T) {
	c.ctl(t, "start", "-w", "-t", "30", "-l", filepath.Join(c.pgData, "postern-test-restart.log"))
}

func (c outageCluster) running() bool {
	return exec.Command(c.pgCtl, "-D", c.pgData, "status").Run() == nil
}

// TestPostgresOutage stops the database under two replicas issuing tokens:
// requests fail fast with 503 temporarily_unavailable, service comes back
// with the database, and every token a client received is still valid.
func TestPostgresOutage(t *testing.T) {
	c := outageCluster{os.Getenv("POSTERN_TEST_PG_OUTAGE_DSN"), os.Getenv("POSTERN_TEST_PG_CTL"), os.Getenv("POSTERN_TEST_PGDATA")}
	if c.dsn == "" || c.pgCtl == "" || c.pgData == "" {
		t.Skip("database outage test skipped: it needs a cluster it may stop (POSTERN_TEST_PG_OUTAGE_DSN, POSTERN_TEST_PG_CTL, POSTERN_TEST_PGDATA, set by .ci/run)")
	}
	if !c.running() {
		t.Fatalf("the outage cluster at %s is not running", c.pgData)
	}
	t.Cleanup(func() {
		if !c.running() {
			c.start(t)
		}
	})
	r := startReplicas(t, freshPostgresSchema(t, c.dsn))
	srvs := []*server{r.a, r.b}
	c0 := &http.Client{Timeout: 20 * time.Second}
	tokenURL := func(i int) string { return srvs[i%2].URL + "/oauth2/token" }

	// Tokens issued before the outage, through both replicas.
	var received []issued
	for i := range 20 {
		rt := requestTokenAs(c0, tokenURL(i), "rs", r.rsSecret)
		if rt.token == "" {
			t.Fatalf("token %d before the outage: status %d %q %v", i, rt.status, rt.body, rt.transportErr)
		}
		received = append(received, issued{token: rt.token, scope: "introspect"})
	}

	c.stop(t)
	for i := range 6 {
		start := time.Now()
		rt := requestTokenAs(c0, tokenURL(i), "rs", r.rsSecret)
		took := time.Since(start)
		var body struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rt.body, &body)
		if rt.status != http.StatusServiceUnavailable || body.Error != "temporarily_unavailable" {
			t.Errorf("token request %d with the database down: status %d %q (%v), want 503 temporarily_unavailable", i, rt.status, rt.body, rt.transportErr)
		}
		// Postern bounds every database call (5s by default); a refused
		// connection fails at once.
		if took > 7*time.Second {
			t.Errorf("token request %d with the database down took %v", i, took)
		}
		resp, ibody := postForm(t, srvs[i%2].URL+"/oauth2/introspect", url.Values{"token": {received[0].token}}, "rs", r.rsSecret)
		if resp.StatusCode != http.StatusServiceUnavailable || ibody["error"] != "temporarily_unavailable" {
			t.Errorf("introspection with the database down: status %d %v, want 503 temporarily_unavailable (never active:false)", resp.StatusCode, ibody)
		}
		if h, err := c0.Get(srvs[i%2].URL + "/healthz"); err != nil || h.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/healthz with the database down: %v %v, want 503 so a load balancer stops routing here", h, err)
		} else {
			h.Body.Close()
		}
	}

	c.start(t)
	for i, srv := range srvs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			rt := requestTokenAs(c0, srv.URL+"/oauth2/token", "rs", r.rsSecret)
			if rt.token != "" {
				received = append(received, issued{token: rt.token, scope: "introspect"})
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still failing 20s after the database returned: status %d %q", i, rt.status, rt.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, srv := range srvs {
		if h, err := c0.Get(srv.URL + "/healthz"); err != nil || h.StatusCode != http.StatusOK {
			t.Errorf("/healthz after the database returned: %v %v", h, err)
		} else {
			h.Body.Close()
		}
		for _, it := range received {
			if got := r.introspect(t, srv, it.token); got["active"] != true {
				t.Errorf("token received before or after the outage is not active at %s: %v", srv.URL, got)
			}
		}
	}
}

// requestTokenAs is requestToken for any confidential client.
func requestTokenAs(c *http.Client, tokenURL, clientID, secret string) rawToken {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return rawToken{transportErr: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return rawToken{transportErr: err}
	}
	defer resp.Body.Close()
	r := rawToken{status: resp.StatusCode}
	r.body, r.bodyErr = io.ReadAll(resp.Body)
	var m struct {
		AccessToken string `json:"access_token"`
	}
	if r.status == http.StatusOK && json.Unmarshal(r.body, &m) == nil {
		r.token = m.AccessToken
	}
	return r
}

package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawToken is one token request made without golang.org/x/oauth2, so that
// the test sees exactly what arrived: no response at all, a status, a body
// that was cut short.
type rawToken struct {
	transportErr error // no response arrived
	status       int
	bodyErr      error // headers arrived, the body did not (truncated)
	body         []byte
	token        string // access_token of a complete 200 JSON answer
}

// requestToken asks for a client-credentials token as billing and reads the
// whole answer before deciding anything.
func requestToken(ctx context.Context, c *http.Client, tokenURL, secret, scope string) rawToken {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return rawToken{transportErr: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("billing", url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return rawToken{transportErr: err}
	}
	defer resp.Body.Close()
	r := rawToken{status: resp.StatusCode}
	r.body, r.bodyErr = io.ReadAll(resp.Body)
	if r.bodyErr != nil || r.status != http.StatusOK {
		return r
	}
	var m struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if json.Unmarshal(r.body, &m) == nil && m.AccessToken != "" && strings.EqualFold(m.TokenType, "bearer") {
		r.token = m.AccessToken
	}
	return r
}

// introspectErr is introspect for goroutines other than the test's: it
// reports failures instead of calling t.Fatal.
func introspectErr(c *http.Client, srvURL, secret, token string) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, srvURL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("billing", url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspect: status %d: %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("introspect: %v: %q", err, body)
	}
	return m, nil
}

// issued is a token and what introspection must say about it.
type issued struct {
	token, scope string
}

// checkAllActive introspects every token with a few workers and fails the
// test for each one that is not active as billing with its scope.
func checkAllActive(t *testing.T, f *ccFixture, toks []issued) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	jobs := make(chan issued)
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				info, err := introspectErr(c, f.srv.URL, f.billingSecret, it.token)
				var problem string
				switch {
				case err != nil:
					problem = err.Error()
				case info["active"] != true || info["client_id"] != "billing" || info["scope"] != it.scope:
					problem = fmt.Sprintf("introspection %v, want active billing %q", info, it.scope)
				}
				if problem != "" {
					mu.Lock()
					bad = append(bad, problem)
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range toks {
		jobs <- it
	}
	close(jobs)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d tokens are not active as issued; first: %s", len(bad), len(toks), bad[0])
	}
}

func getBytes(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", u, resp.StatusCode, b)
	}
	return b
}

// restart starts a new server on f's config and data directory.
func (f *ccFixture) restart(t *testing.T) *ccFixture {
	t.Helper()
	return &ccFixture{srv: startServer(t, f.srv.Config, f.srv.DataDir), billingSecret: f.billingSecret}
}

// scopeCases are requested scopes and the scope granted for each: billing
// is registered with "read write", which is also the default.
var scopeCases = []struct {
	req  []string
	want string
}{
	{nil, "read write"},
	{[]string{"read"}, "read"},
	{[]string{"write"}, "write"},
	{[]string{"read", "write"}, "read write"},
}

func TestRestartKeepsTokens(t *testing.T) {
	f := newCCFixture(t, "opaque")
	ctx := context.Background()

	var live, revoked []issued
	for i := range 50 {
		sc := scopeCases[i%len(scopeCases)]
		tok, err := f.billing(sc.req...).Token(ctx)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		it := issued{token: tok.AccessToken, scope: sc.want}
		if i%5 == 2 {
			revoked = append(revoked, it)
		} else {
			live = append(live, it)
		}
	}
	for _, it := range revoked {
		resp, _ := postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {it.token}}, "billing", f.billingSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: status %d", resp.StatusCode)
		}
	}
	if len(revoked) != 10 {
		t.Fatalf("revoked %d tokens, want 10", len(revoked))
	}
	// Sanity check before the restart, so a failure after it means the
	// restart lost something.
	checkAllActive(t, f, live)
	jwks := getBytes(t, f.srv.URL+"/.well-known/jwks.json")

	f.srv.Stop()
	g := f.restart(t)

	checkAllActive(t, g, live)
	for _, it := range revoked {
		if got := g.introspect(t, it.token); got["active"] != false {
			t.Errorf("revoked token is active again after restart: %v", got)
		}
	}
	if after := getBytes(t, g.srv.URL+"/.well-known/jwks.json"); !bytes.Equal(jwks, after) {
		t.Errorf("JWKS changed across restart:\nbefore %s\nafter  %s", jwks, after)
	}
	tok, err := g.billing("read").Token(ctx)
	if err != nil {
		t.Fatalf("new token after restart: %v", err)
	}
	if got := g.introspect(t, tok.AccessToken); got["active"] != true || got["scope"] != "read" {
		t.Errorf("new token after restart: introspection %v", got)
	}
}

func TestCrashLosesNoIssuedToken(t *testing.T) {
	f := newCCFixture(t, "opaque")
	tokenURL := f.srv.URL + "/oauth2/token"
	// A client timeout bounds every request, so the workers always end.
	c := &http.Client{Timeout: 5 * time.Second}

	stop := make(chan struct{})
	results := make([][]issued, 8)
	failures := make([]int, 8)
	var received atomic.Int64 // tokens fully received, across workers
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sc := scopeCases[(w+i)%len(scopeCases)]
				r := requestToken(context.Background(), c, tokenURL, f.billingSecret, strings.Join(sc.req, " "))
				if r.token != "" {
					// The whole 200 answer reached us: the server promised
					// this token.
					results[w] = append(results[w], issued{token: r.token, scope: sc.want})
					received.Add(1)
				} else {
					failures[w]++
				}
			}
		}()
	}
	// Wait until enough tokens were issued for the test to mean
	// something, however slow the machine; bounded so a stuck server fails.
	for deadline := time.Now().Add(30 * time.Second); received.Load() <= 50 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	f.srv.Kill() // SIGKILL while the workers are still asking
	close(stop)
	wg.Wait()

	var all []issued
	nfail := 0
	for w := range results {
		all = append(all, results[w]...)
		nfail += failures[w]
	}
	t.Logf("%d tokens fully received before SIGKILL, %d requests failed around the crash", len(all), nfail)
	if len(all) <= 50 {
		t.Fatalf("only %d tokens issued before the crash; the test needs more than 50 to mean anything", len(all))
	}
	select {
	case <-f.srv.done:
	default:
		t.Fatal("postern still running after SIGKILL")
	}

	g := f.restart(t)
	checkAllActive(t, g, all)
}

func TestStoreLockedByRunningServer(t *testing.T) {
	f := newCCFixture(t, "opaque")

	for _, sub := range []string{"list", "rotate"} {
		start := time.Now()
		out, errOut, code := runPostern(t, "", "keys", sub, "--config", f.srv.Config, "--data", f.srv.DataDir)
		t.Logf("postern keys %s returned after %v with exit %d", sub, time.Since(start).Round(time.Millisecond), code)
		if code == 0 {
			t.Fatalf("postern keys %s succeeded on a store held by a running server:\n%s", sub, out)
		}
		if !strings.Contains(errOut, "locked") && !strings.Contains(errOut, "in use") {
			t.Errorf("postern keys %s: stderr does not say the store is locked or in use:\n%s", sub, errOut)
		}
	}

	// A second server on the same data directory is refused the same way.
	_, errOut, code := runServeFailing(t, nil, "--config", f.srv.Config, "--data", f.srv.DataDir)
	if code == 0 || !strings.Contains(errOut, "locked") {
		t.Errorf("second postern serve on the same data: exit %d, stderr:\n%s", code, errOut)
	}

	// The running server was not disturbed.
	tok, err := f.billing().Token(context.Background())
	if err != nil {
		t.Fatalf("token after the refused commands: %v", err)
	}
	if f.introspect(t, tok.AccessToken)["active"] != true {
		t.Error("token issued after the refused commands is not active")
	}
	f.srv.Stop()
	out, errOut, code := runPostern(t, "", "keys", "list", "--config", f.srv.Config, "--data", f.srv.DataDir)
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasSuffix(strings.TrimSpace(out), "active") {
		t.Errorf("keys list after stop: exit %d, want one active key (the refused rotate changed nothing):\n%s%s", code, out, errOut)
	}
}

// slowTokenRequest is a token request that the server has started handling
// but whose body the test holds back, so that it is in flight for as long as
// the test wants.
type slowTokenRequest struct {
	conn net.Conn
	br   *bufio.Reader
	body string
}

// startSlowTokenRequest sends the headers with "Expect: 100-continue" and
// waits for the server's 100 Continue: the server has then accepted the
// connection, parsed the request and its handler is reading the body.
func startSlowTokenRequest(t *testing.T, srvURL, secret string) *slowTokenRequest {
	t.Helper()
	u, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	body := "grant_type=client_credentials&scope=read"
	head := fmt.Sprintf("POST /oauth2/token HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		u.Host, base64.StdEncoding.EncodeToString([]byte("billing:"+url.QueryEscape(secret))), len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("waiting for 100 Continue: %v", err)
	}
	if resp.StatusCode != http.StatusContinue {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("want 100 Continue, got %d: %q", resp.StatusCode, b)
	}
	return &slowTokenRequest{conn: conn, br: br, body: body}
}

// finish sends the body and reads the whole answer.
func (s *slowTokenRequest) finish() (status int, body []byte, err error) {
	if _, err := io.WriteString(s.conn, s.body); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func TestGracefulStopFinishesInFlight(t *testing.T) {
	f := newCCFixture(t, "opaque")
	tokenURL := f.srv.URL + "/oauth2/token"

	// Two requests that are certainly in flight when SIGTERM arrives: the
	// server is waiting for their bodies.
	slow := []*slowTokenRequest{
		startSlowTokenRequest(t, f.srv.URL, f.billingSecret),
		startSlowTokenRequest(t, f.srv.URL, f.billingSecret),
	}

	// Twenty more fired together, racing the signal.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	results := make([]rawToken, 20)
	fire := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-fire
			results[i] = requestToken(context.Background(), c, tokenURL, f.billingSecret, "")
		}()
	}
	close(fire)
	time.Sleep(2 * time.Millisecond) // let some of them reach the server first
	if err := f.srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait until the server has begun shutting down before completing the
	// slow requests, so they are finished during the shutdown.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.srv.logs.String(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown log line within 10s of SIGTERM:\n%s", f.srv.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var good []issued
	for i, s := range slow {
		status, body, err := s.finish()
		if err != nil || status != http.StatusOK {
			t.Errorf("in-flight request %d during shutdown: status %d, err %v, body %q", i, status, err, body)
			continue
		}
		var m struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.AccessToken == "" {
			t.Errorf("in-flight request %d during shutdown: body %q", i, body)
			continue
		}
		good = append(good, issued{token: m.AccessToken, scope: "read"})
	}
	wg.Wait()
	f.srv.Stop() // fails the test unless the exit code is 0

	refused := 0
	for i, r := range results {
		switch {
		case r.transportErr != nil:
			refused++ // no response at all: allowed
		case r.bodyErr != nil:
			t.Errorf("request %d: status %d but the body was cut short: %v (%q)", i, r.status, r.bodyErr, r.body)
		case r.status != http.StatusOK:
			t.Errorf("request %d: status %d: %q", i, r.status, r.body)
		case r.token == "":
			t.Errorf("request %d: 200 without a valid token: %q", i, r.body)
		default:
			good = append(good, issued{token: r.token, scope: "read write"})
		}
	}
	t.Logf("%d of %d racing requests got a token, %d got no response", len(results)-refused, len(results), refused)

	// Whatever was answered during the shutdown was also stored.
	g := f.restart(t)
	checkAllActive(t, g, good)
}

package test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The refresh retry window (tokens.refresh_retry_window, 30s by default): a
// refresh token presented again by its own client, while its successor is
// unused, gets the very same answer; anything else is reuse, as before.

// refreshForm presents rt as the public client spa.
func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}}
}

// pair is the part of a token answer a retry must repeat exactly.
type pair struct{ access, refresh, scope string }

func pairOf(t *testing.T, what string, resp *http.Response, body map[string]any) pair {
	t.Helper()
	p := pair{}
	p.access, _ = body["access_token"].(string)
	p.refresh, _ = body["refresh_token"].(string)
	p.scope, _ = body["scope"].(string)
	if resp.StatusCode != http.StatusOK || p.access == "" || p.refresh == "" {
		t.Fatalf("%s: status %d %v", what, resp.StatusCode, body)
	}
	return p
}

// TestRefreshRetryLostResponse: the answer to a refresh is lost; the retry
// with the same refresh token gets the same pair, expires_in counted from
// the first answer, and the pair works.
func TestRefreshRetryLostResponse(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))

	resp, body := f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	first := pairOf(t, "refresh", resp, body)
	resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	again := pairOf(t, "retry", resp, body)
	if again != first {
		t.Fatalf("retry answered another pair:\n first %+v\n again %+v", first, again)
	}
	if exp, _ := body["expires_in"].(float64); exp <= 0 || exp > 600 {
		t.Errorf("retry's expires_in = %v, want what is left of the first answer's 600s", body["expires_in"])
	}
	if got := f.introspect(t, again.access); got["active"] != true {
		t.Errorf("the retried access token is not active: %v", got)
	}
	// The pair works: its refresh token rotates the grant on.
	resp, body = f.tokenCall(t, refreshForm(again.refresh), "", "")
	next := pairOf(t, "refresh with the retried refresh token", resp, body)
	if next.refresh == again.refresh {
		t.Error("the retried refresh token did not rotate")
	}
	// Its successor used, the first token is no retry any more: reuse.
	resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	wantOAuthError(t, "first refresh token after its successor was used", resp, body, http.StatusBadRequest, "invalid_grant")
	for name, tk := range map[string]string{"newest access token": next.access, "newest refresh token": next.refresh} {
		if f.introspect(t, tk)["active"] != false {
			t.Errorf("%s still active after reuse", name)
		}
	}
	// Log lines may follow the responses by a moment.
	for _, ev := range []string{"refresh_retried", "refresh_token_reuse"} {
		logged(t, f.srv.logs, 0, ev)
	}
	if m := getBytes(t, f.srv.MetricsURL()); !strings.Contains(string(m), "postern_refresh_retries_total 1") {
		t.Error("postern_refresh_retries_total is not 1")
	}
}

// TestRefreshRetryConcurrent: ten tabs refresh with one token at once; all
// ten get the same pair, and the grant stays one chain.
func TestRefreshRetryConcurrent(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))
	const n = 10
	got := make([]pair, n)
	statuses := make([]int, n)
	start := make(chan struct{})
	client := &http.Client{Timeout: 20 * time.Second}
	form := refreshForm(tok.RefreshToken).Encode()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth2/token", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			<-start
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("refresh %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := jsonDecode(resp, &body); err != nil {
				t.Errorf("refresh %d: %v", i, err)
			}
			statuses[i] = resp.StatusCode
			got[i].access, _ = body["access_token"].(string)
			got[i].refresh, _ = body["refresh_token"].(string)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if statuses[i] != http.StatusOK || got[i].access == "" {
			t.Errorf("refresh %d: status %d", i, statuses[i])
		} else if got[i] != got[0] {
			t.Errorf("refresh %d answered another pair than refresh 0", i)
		}
	}
	if t.Failed() {
		return
	}
	if f.introspect(t, got[0].access)["active"] != true {
		t.Error("the shared access token is not active")
	}
	resp, body := f.tokenCall(t, refreshForm(got[0].refresh), "", "")
	pairOf(t, "refresh with the shared successor", resp, body)
}

// TestRefreshRetryOtherClient: another client presenting the used token is
// refused, and the real client's grant is left alone.
func TestRefreshRetryOtherClient(t *testing.T) {
	t.Parallel()
	f := newSecurityFixture(t)
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))
	resp, body := f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	first := pairOf(t, "refresh", resp, body)

	const mobileSecret = "mobile-dev-secret-0123456789"
	resp, body = f.tokenCall(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "mobile", mobileSecret)
	wantOAuthError(t, "spa's used refresh token presented by mobile", resp, body, http.StatusBadRequest, "invalid_grant")
	if f.introspect(t, first.access)["active"] != true {
		t.Fatal("the real client's grant was revoked by another client's attempt")
	}
	resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	if again := pairOf(t, "the real client's retry", resp, body); again != first {
		t.Error("the real client's retry answered another pair")
	}
}

// TestRefreshRetryWindowEnds: after the window the same presentation is
// reuse, as it is at once with the window off.
func TestRefreshRetryWindowEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		window string
		wait   time.Duration
	}{
		{"0s", 0},
		{"1s", 1500 * time.Millisecond},
	} {
		t.Run("window "+tc.window, func(t *testing.T) {
			t.Parallel()
			f := newUserFixtureWindow(t, tc.window)
			tok := f.authorize(t, f.oauthConfig("spa", "", "read"))
			resp, body := f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
			first := pairOf(t, "refresh", resp, body)
			time.Sleep(tc.wait) // past the window: no timing is asserted
			resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
			wantOAuthError(t, "the used refresh token again", resp, body, http.StatusBadRequest, "invalid_grant")
			for name, tk := range map[string]string{"access token": first.access, "refresh token": first.refresh} {
				if f.introspect(t, tk)["active"] != false {
					t.Errorf("successor %s still active after reuse", name)
				}
			}
		})
	}
}

// TestRefreshRetryDiesWithGrant: a retry never brings back a grant revoked
// meanwhile (RFC 7009 here).
func TestRefreshRetryDiesWithGrant(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))
	resp, body := f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	first := pairOf(t, "refresh", resp, body)
	resp, _ = postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {first.refresh}, "client_id": {"spa"}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	wantOAuthError(t, "retry after the grant was revoked", resp, body, http.StatusBadRequest, "invalid_grant")
	if f.introspect(t, first.access)["active"] != false {
		t.Error("the revoked grant's access token came back")
	}
}

// TestRefreshRetryAfterCrash: the server is killed between the refresh and
// the retry; after the restart the retry still gets the same pair.
func TestRefreshRetryAfterCrash(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	conf := f.oauthConfig("spa", "", "read")
	tok := f.authorize(t, conf)
	resp, body := f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	first := pairOf(t, "refresh", resp, body)
	f.srv.Kill()
	f.srv = startServer(t, f.srv.Config, f.srv.DataDir)
	resp, body = f.tokenCall(t, refreshForm(tok.RefreshToken), "", "")
	if again := pairOf(t, "retry after kill -9", resp, body); again != first {
		t.Error("the retry after a crash answered another pair")
	}
	// golang.org/x/oauth2 on the retried pair, as an app would.
	conf = f.oauthConfig("spa", "", "read")
	next, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: first.refresh, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil || next.RefreshToken == first.refresh {
		t.Fatalf("refresh with the retried pair after restart: %v", err)
	}
}

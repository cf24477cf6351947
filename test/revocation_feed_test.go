package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The revocation feed end to end: server, gateway (cache.ttl one hour) and
// echo backend as real processes. A token passes; it is revoked at the
// server; the gateway refuses it well within a second (polled, no sleeps).

// feedWithin is how soon a revocation must reach the gateway.
const feedWithin = time.Second

// waitFeedConnected waits until the gateway follows the feed, caught up.
func waitFeedConnected(t *testing.T, gw *gwProc) {
	t.Helper()
	gwEventually(t, 10*time.Second, "gateway follows the revocation feed", func() bool {
		return gwMetric(t, gw, "postern_gateway_revocation_feed_connected") == 1
	})
}

// gwMetric reads an unlabelled metric of the gateway's admin listener.
func gwMetric(t *testing.T, gw *gwProc, name string) float64 {
	t.Helper()
	resp, err := http.Get(gw.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// refusedWithin polls the gateway with token until it answers 401.
func refusedWithin(t *testing.T, gw *gwProc, path, token string, limit time.Duration) {
	t.Helper()
	gwEventually(t, limit, "gateway refuses the revoked token", func() bool {
		resp, _ := gwGet(t, gw.URL+path, token, nil)
		return resp.StatusCode == http.StatusUnauthorized
	})
}

func passes(t *testing.T, gw *gwProc, path, token string) {
	t.Helper()
	if resp, body := gwGet(t, gw.URL+path, token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("token refused before its revocation: %d %s", resp.StatusCode, body)
	}
}

// withFeedGateway sets a one-hour cache (only the feed can make a revoked
// token fail in time) and an admin listener for the metrics.
func withFeedGateway(cfg map[string]any) {
	cfg["cache"] = map[string]any{"ttl": "1h", "negative_ttl": "1s"}
	cfg["admin_listen"] = "127.0.0.1:0"
}

func TestFeedClientTokens(t *testing.T) {
	for _, format := range []string{"opaque", "jwt"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			f := newGWFixture(t, `{"access_token_format": "`+format+`"}`)
			backend := startEchoBackend(t)
			gw := f.startGateway(t, backend.URL, withFeedGateway)
			waitFeedConnected(t, gw)

			// RFC 7009.
			tok := f.token(t, "billing", "read", "write")
			passes(t, gw, "/billing/x", tok)
			f.revoke(t, tok)
			refusedWithin(t, gw, "/billing/x", tok, feedWithin)

			// A client removed from the configuration, applied at SIGHUP.
			device := f.token(t, "device-42", "read")
			passes(t, gw, "/search/v1/q", device)
			still := f.token(t, "billing", "read")
			raw := readFile(t, f.srv.Config)
			i := strings.Index(raw, `{"client_id": "device-42"`)
			if i < 0 {
				t.Fatal("device-42 not in the server config")
			}
			j := strings.Index(raw[i:], "}") + i + 1
			f.srv.reload(strings.Replace(raw[:i], `read write"},`, `read write"}`, 1) + raw[j:])
			refusedWithin(t, gw, "/search/v1/q", device, 5*time.Second)
			passes(t, gw, "/search/v1/q", still)
			if n := gwMetric(t, gw, "postern_gateway_revocation_events_total"); n < 2 {
				t.Errorf("postern_gateway_revocation_events_total = %v, want at least 2", n)
			}
		})
	}
}

// The server is killed and restarted while the gateway runs; a revocation
// made before the gateway is back takes effect once it reconnects.
func TestFeedSurvivesServerCrash(t *testing.T) {
	t.Parallel()
	addr := gwFreeAddr(t)
	f := newGWFixture(t, `{}`, "--addr", addr)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, withFeedGateway)
	waitFeedConnected(t, gw)
	tok := f.token(t, "billing", "read", "write")
	passes(t, gw, "/billing/x", tok)

	f.srv.Kill()
	f.srv = startServer(t, f.srv.Config, f.srv.DataDir, "--addr", addr)
	f.revoke(t, tok)
	refusedWithin(t, gw, "/billing/x", tok, 40*time.Second)
	if n := gwMetric(t, gw, "postern_gateway_revocation_feed_reconnects_total"); n < 1 {
		t.Errorf("no reconnect counted")
	}
}

// Revocations of user grants: refresh-token reuse, the account API, and a
// user removed from the configuration.
func TestFeedUserGrants(t *testing.T) {
	t.Parallel()
	f := newAccountFixture(t)
	backend := startEchoBackend(t)
	gwCfg := fmt.Sprintf(`{
  "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "issuer": %q,
  "client_id": "rs", "client_secret": "${RS_SECRET}",
  "cache": {"ttl": "1h", "negative_ttl": "1s"},
  "routes": [{"path_prefix": "/api", "upstream": %q, "scopes": ["read"]}]
}`, f.srv.URL, backend.URL)
	gw := startGateway(t, gwCfg, "RS_SECRET="+f.rsPass)
	waitFeedConnected(t, gw)
	ctx := context.Background()
	const mobileSecret = "mobile-dev-secret-0123456789"
	conf := &oauth2.Config{ClientID: "mobile", ClientSecret: mobileSecret, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}

	// Reuse: the first refresh token again once its successor was used.
	first, err := conf.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	second, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	third, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: second.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	passes(t, gw, "/api/x", third.AccessToken)
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token(); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("reuse: %v", err)
	}
	refusedWithin(t, gw, "/api/x", third.AccessToken, feedWithin)

	// The account API's DELETE of a grant.
	victim, err := conf.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	passes(t, gw, "/api/x", victim.AccessToken)
	acct := &oauth2.Config{ClientID: "mobile", ClientSecret: mobileSecret, Scopes: []string{"account"},
		Endpoint: conf.Endpoint}
	admin, err := acct.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	in := f.introspect(t, victim.AccessToken)
	grant, _ := in["grant_id"].(string)
	req, _ := http.NewRequest(http.MethodDelete, f.srv.URL+"/account/api/grants/"+url.PathEscape(grant), nil)
	req.Header.Set("Authorization", "Bearer "+admin.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE grant %s: %d", grant, resp.StatusCode)
	}
	refusedWithin(t, gw, "/api/x", victim.AccessToken, feedWithin)

	// A user removed from the configuration (SIGHUP).
	bobConf := *conf
	bobTok, err := bobConf.PasswordCredentialsToken(ctx, "bob", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	passes(t, gw, "/api/x", bobTok.AccessToken)
	raw := readFile(t, f.srv.Config)
	without := strings.Replace(raw, `,
    {"username": "bob", "password": "bob-password"}`, "", 1)
	if without == raw {
		t.Fatal("bob not in the server config")
	}
	f.srv.reload(without)
	refusedWithin(t, gw, "/api/x", bobTok.AccessToken, 5*time.Second)
}

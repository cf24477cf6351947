package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Configuration reload (SIGHUP) of a running `postern serve` and `postern
// gateway`: the new configuration applies without a restart, a bad one or
// one that needs a restart changes nothing, and the process keeps serving.

const (
	reloadRSSecret = "rs-dev-secret-0123456789"
	reloadAddr     = "127.0.0.1:0"
)

// reloadConfig is a server configuration with alice, the introspecting
// client rs and one client_credentials client per id (secret id+"-secret…").
// extra is spliced into the top-level object, and into clients[1] when
// clientExtra is set.
// reloadAPI is an apis block (for reloadConfig's extra) of one API
// described by openapiFile.
func reloadAPI(openapiFile string) string {
	return fmt.Sprintf(`"apis": [{"id": "search", "name": "Search", "base_url": "https://api.example.com/search", "scopes": {"read": "Search the index"}, "openapi": %q}]`, openapiFile)
}

func reloadConfig(extra, clientExtra string, ids ...string) string {
	clients := []string{fmt.Sprintf(`{"client_id": "rs", "client_secret": %q, "grant_types": ["client_credentials"], "resource_server": true}`, reloadRSSecret)}
	for i, id := range ids {
		more := ""
		if i == 0 && clientExtra != "" {
			more = ", " + clientExtra
		}
		clients = append(clients, fmt.Sprintf(`{"client_id": %q, "client_secret": "%s-secret-0123456789", "grant_types": ["client_credentials"], "scope": "read"%s}`, id, id, more))
	}
	if extra != "" {
		extra += ",\n  "
	}
	return fmt.Sprintf(`{
  %s"addr": %q,
  "users": [{"username": "alice", "password": "alice-password"}],
  "clients": [
    %s
  ]
}`, extra, reloadAddr, strings.Join(clients, ",\n    "))
}

// reload rewrites the server's configuration file and sends SIGHUP.
func (s *server) reload(config string) {
	s.t.Helper()
	if err := os.WriteFile(s.Config, []byte(config), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		s.t.Fatal(err)
	}
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, logs *syncBuffer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10s; logs:\n%s", what, logs.String())
}

// logged waits until the log holds substr more often than before.
func logged(t *testing.T, logs *syncBuffer, before int, substr string) {
	t.Helper()
	eventually(t, "log "+substr, logs, func() bool { return strings.Count(logs.String(), substr) > before })
}

func ccToken(t *testing.T, srvURL, id string) (status int, body map[string]any) {
	t.Helper()
	resp, body := postForm(t, srvURL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, id+"-secret-0123456789")
	return resp.StatusCode, body
}

func reloadIntrospect(t *testing.T, srvURL, token string) map[string]any {
	t.Helper()
	resp, body := postForm(t, srvURL+"/oauth2/introspect", url.Values{"token": {token}}, "rs", reloadRSSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: %d %v", resp.StatusCode, body)
	}
	return body
}

func TestReloadServe(t *testing.T) {
	// "--addr=" after the harness's --addr: the file's addr applies, so
	// that a change to it can be tried.
	srv := startServer(t, writeConfig(t, reloadConfig("", "", "svc-a")), "", "--addr=")
	tokensIssued := func() int {
		return gwMetricValue(t, srv.MetricsURL(), "postern_http_requests_total", `endpoint="token"`, `code="200"`)
	}

	var tokA string
	for range 3 {
		status, body := ccToken(t, srv.URL, "svc-a")
		if status != http.StatusOK {
			t.Fatalf("svc-a token: %d %v", status, body)
		}
		tokA = body["access_token"].(string)
	}
	if reloadIntrospect(t, srv.URL, tokA)["active"] != true {
		t.Fatal("svc-a token inactive before the reload")
	}
	alice := newBrowser(t)
	login := alice.get(srv.URL + "/login")
	form := formFields(t, login)
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	if p := alice.post(srv.URL+"/login", form); p.status != http.StatusOK {
		t.Fatalf("login: %d\n%s", p.status, p.body)
	}
	if m := signedInAs.FindStringSubmatch(alice.get(srv.URL + "/account").body); m == nil || m[1] != "alice" {
		t.Fatal("alice is not signed in")
	}
	issuedBefore := tokensIssued()
	if issuedBefore < 3 {
		t.Fatalf("token counter %d before the reload, want at least 3", issuedBefore)
	}

	// Client B replaces client A.
	srv.reload(reloadConfig("", "", "svc-b"))
	eventually(t, "svc-b gets a token after SIGHUP", srv.logs, func() bool {
		status, _ := ccToken(t, srv.URL, "svc-b")
		return status == http.StatusOK
	})
	// The new configuration serves before its log line is written.
	logged(t, srv.logs, 0, "clients_added=[svc-b] clients_removed=[svc-a]")
	if status, body := ccToken(t, srv.URL, "svc-a"); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("removed svc-a: %d %v, want 401 invalid_client", status, body)
	}
	if info := reloadIntrospect(t, srv.URL, tokA); info["active"] != false {
		t.Errorf("removed client's token introspects %v, want inactive", info)
	}
	status, body := ccToken(t, srv.URL, "svc-b")
	if status != http.StatusOK {
		t.Fatalf("svc-b token: %d %v", status, body)
	}
	tokB := body["access_token"].(string)
	if info := reloadIntrospect(t, srv.URL, tokB); info["active"] != true || info["client_id"] != "svc-b" || info["scope"] != "read" {
		t.Errorf("svc-b token after the reload: %v", info)
	}
	// The login session cookie from before the reload still signs alice in.
	if m := signedInAs.FindStringSubmatch(alice.get(srv.URL + "/account").body); m == nil || m[1] != "alice" {
		t.Error("alice's login session did not survive the reload")
	}
	issuedAfter := tokensIssued()
	if issuedAfter < issuedBefore+2 {
		t.Errorf("token counter %d after the reload, want at least %d: it restarted", issuedAfter, issuedBefore+2)
	}

	// Refused: an unknown field; a change only a restart applies (with a
	// client change riding along, which must not apply either); an API
	// whose OpenAPI file (relative: beside the configuration file) is
	// malformed.
	brokenAPI := filepath.Join(filepath.Dir(srv.Config), "broken-openapi.yaml")
	if err := os.WriteFile(brokenAPI, []byte("openapi: 3.0.3\ninfo: {title: Broken, version: '1'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []struct{ config, log string }{
		{reloadConfig(reloadAPI("broken-openapi.yaml"), "", "svc-b", "svc-c"), `config: apis[0].openapi: ` + brokenAPI + `: invalid OpenAPI 3.0.3 document: invalid paths: must be an object`},
		{reloadConfig("", `"scopes": "read"`, "svc-b", "svc-c"), `config: clients[1]: unknown field \"scopes\"`},
		{strings.Replace(reloadConfig("", "", "svc-b", "svc-c"), reloadAddr, "127.0.0.1:1", 1), "a change to addr requires a restart"},
		{reloadConfig(`"keys": {"algorithm": "RS256"}`, "", "svc-b", "svc-c"), "a change to keys.algorithm requires a restart"},
	}
	for _, r := range refused {
		n := strings.Count(srv.logs.String(), r.log)
		srv.reload(r.config)
		logged(t, srv.logs, n, r.log)
		if status, body := ccToken(t, srv.URL, "svc-b"); status != http.StatusOK {
			t.Errorf("after refusing (%s): svc-b token %d %v", r.log, status, body)
		}
		if status, _ := ccToken(t, srv.URL, "svc-c"); status != http.StatusUnauthorized {
			t.Errorf("after refusing (%s): svc-c got a token (%d): half applied", r.log, status)
		}
		if info := reloadIntrospect(t, srv.URL, tokB); info["active"] != true {
			t.Errorf("after refusing (%s): svc-b's token inactive", r.log)
		}
	}
	if !strings.Contains(srv.logs.String(), "still serving the previous configuration") {
		t.Error("the refusal does not say the previous configuration stays")
	}

	// A second reload, with an API catalogue; the counters still carry on.
	if err := os.WriteFile(brokenAPI, []byte("openapi: 3.0.3\ninfo: {title: Fixed, version: '1'}\npaths: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.reload(reloadConfig(reloadAPI("broken-openapi.yaml"), "", "svc-b", "svc-c"))
	eventually(t, "svc-c gets a token after the second reload", srv.logs, func() bool {
		status, _ := ccToken(t, srv.URL, "svc-c")
		return status == http.StatusOK
	})
	if got := tokensIssued(); got < issuedAfter+2 {
		t.Errorf("token counter %d after two reloads, want at least %d", got, issuedAfter+2)
	}
	logged(t, srv.logs, 1, `msg="configuration reloaded"`)
	logged(t, srv.logs, 0, `saml_providers=0 apis=1 clients_added=[svc-c]`)
	if strings.Count(srv.logs.String(), `msg="configuration reloaded"`) != 2 {
		t.Errorf("want exactly two applied reloads in the log")
	}
	srv.Stop()
}

// gatewayRoutes is a gateway configuration routing each prefix, public, to
// backend; extra is spliced into the top-level object.
func gatewayRoutes(t *testing.T, backend, extra string, prefixes ...string) string {
	t.Helper()
	var routes []map[string]any
	for _, p := range prefixes {
		routes = append(routes, map[string]any{"path_prefix": p, "upstream": backend, "public": true})
	}
	b, err := json.Marshal(routes)
	if err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		extra += ", "
	}
	// Public routes only: the issuer is never asked.
	return fmt.Sprintf(`{%s"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "issuer": "http://127.0.0.1:9", "routes": %s}`, extra, b)
}

func TestReloadGateway(t *testing.T) {
	backend := startEchoBackend(t)
	path := writeConfig(t, gatewayRoutes(t, backend.URL, "", "/one"))
	gw := startGWProc(t, "gateway", binary, []string{"gateway", "--config", path, "--log-level", "debug"}, nil, true)
	status := func(p string) int {
		resp, err := http.Get(gw.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reload := func(config string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "gateway serves /one", gw.logs, func() bool { return status("/one") == http.StatusOK })
	if got := status("/two"); got != http.StatusNotFound {
		t.Fatalf("/two before the reload: %d, want 404", got)
	}

	reload(gatewayRoutes(t, backend.URL, "", "/two"))
	eventually(t, "/two routed after SIGHUP", gw.logs, func() bool { return status("/two") == http.StatusOK })
	if got := status("/one"); got != http.StatusNotFound {
		t.Errorf("/one after the reload: %d, want 404", got)
	}
	if n := gwMetricValue(t, gw.AdminURL+"/metrics", "postern_gateway_requests_total", `route="/two"`); n < 1 {
		t.Errorf("admin /metrics after the reload counts %d requests on /two", n)
	}

	refused := []struct{ config, log string }{
		{strings.Replace(gatewayRoutes(t, backend.URL, "", "/two", "/three"), `"public":true`, `"public":true,"pubic":true`, 1), `config: routes[0]: unknown field \"pubic\"`},
		{strings.Replace(gatewayRoutes(t, backend.URL, "", "/two", "/three"), `"listen": "127.0.0.1:0"`, `"listen": "127.0.0.1:1"`, 1), "a change to listen requires a restart"},
		{strings.Replace(gatewayRoutes(t, backend.URL, "", "/two", "/three"), `"admin_listen": "127.0.0.1:0", `, "", 1), "a change to admin_listen requires a restart"},
	}
	for _, r := range refused {
		n := strings.Count(gw.logs.String(), r.log)
		reload(r.config)
		logged(t, gw.logs, n, r.log)
		if got := status("/two"); got != http.StatusOK {
			t.Errorf("after refusing (%s): /two %d", r.log, got)
		}
		if got := status("/three"); got != http.StatusNotFound {
			t.Errorf("after refusing (%s): /three %d: half applied", r.log, got)
		}
	}
	gw.Stop()
}

var pprofAt = regexp.MustCompile(`postern pprof at (http://\S+)/debug/pprof/`)

// goroutinesWith sums the goroutines whose stacks mention fn, from the
// server's goroutine profile.
func goroutinesWith(t *testing.T, pprofURL, fn string) int {
	t.Helper()
	resp, err := http.Get(pprofURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0
	for _, block := range strings.Split(string(body), "\n\n") {
		if !strings.Contains(block, fn) {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(block, "%d @", &n); err == nil {
			total += n
		}
	}
	return total
}

// A private_key_jwt client with a jwks_uri authenticates across reloads, and
// the key fetcher's cache goroutines are not started again by each new
// configuration.
func TestReloadJWKSURIClient(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	keysSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	defer keysSrv.Close()
	signer := fmt.Sprintf(`{"client_id": "signer", "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
   "jwks_uri": %q, "grant_types": ["client_credentials"]}`, keysSrv.URL+"/jwks.json")
	config := func(ids ...string) string {
		return strings.Replace(reloadConfig("", "", ids...), `"clients": [`, `"clients": [`+signer+`, `, 1)
	}
	srv := startServer(t, writeConfig(t, config("svc-0")), "", "--pprof", "127.0.0.1:0")
	m := pprofAt.FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no pprof address in the logs:\n%s", srv.logs)
	}
	pprofURL := m[1]
	tokenURL := srv.URL + "/oauth2/token"
	jti := 0
	signIn := func() int {
		jti++
		resp, _ := postForm(t, tokenURL, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, key, "signer", tokenURL, fmt.Sprintf("jti-%d", jti), time.Now().Add(2*time.Minute))}}, "", "")
		return resp.StatusCode
	}
	if got := signIn(); got != http.StatusOK {
		t.Fatalf("signer before any reload: %d", got)
	}
	const cache = "ristretto"
	before := goroutinesWith(t, pprofURL, cache)
	if before == 0 {
		t.Fatalf("no %s goroutines after a jwks_uri client signed in: is the profile readable?", cache)
	}
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("svc-%d", i)
		srv.reload(config(id))
		eventually(t, id+" gets a token", srv.logs, func() bool {
			status, _ := ccToken(t, srv.URL, id)
			return status == http.StatusOK
		})
		if got := signIn(); got != http.StatusOK {
			t.Fatalf("signer after reload %d: %d", i, got)
		}
	}
	if after := goroutinesWith(t, pprofURL, cache); after != before {
		t.Errorf("%s goroutines: %d before the reloads, %d after", cache, before, after)
	}
	srv.Stop()
}

package test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// runServeFailing runs `postern serve` with args (plus a free loopback
// address), POSTERN_SECRET=testSecret overridden by env, and expects it to
// exit on its own: it fails the test if the server starts listening or is
// still running after 15s. It returns the exit code and output.
func runServeFailing(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runPosternFailing(t, env, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
}

// runPosternFailing runs any long-running command (serve, gateway) the
// same way.
func runPosternFailing(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "POSTERN_SECRET="+testSecret), env...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); ok {
				return out.String(), errb.String(), ee.ExitCode()
			} else if err != nil {
				t.Fatalf("postern %v: %v", args, err)
			}
			return out.String(), errb.String(), 0
		case <-tick.C:
			if listening.MatchString(out.String()) {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("postern %v started serving; it should have refused:\n%s%s", args, out.String(), errb.String())
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("postern %v still running after 15s; it should have refused to start:\n%s%s", args, out.String(), errb.String())
		}
	}
}

var jwtAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// fetchJWKS reads the key set from the jwks_uri that discovery names.
func fetchJWKS(t *testing.T, srvURL string) jose.JSONWebKeySet {
	t.Helper()
	resp, doc := do(t, mustGet(t, srvURL+"/.well-known/oauth-authorization-server"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: status %d", resp.StatusCode)
	}
	uri, _ := doc["jwks_uri"].(string)
	if uri == "" {
		t.Fatalf("discovery has no jwks_uri: %v", doc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(getBytes(t, uri), &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("jwks publishes a private key (kid %s)", k.KeyID)
		}
	}
	return set
}

// verifyJWT parses token as a compact JWS, finds its kid in set, verifies the
// signature and returns the kid and claims.
func verifyJWT(t *testing.T, token string, set jose.JSONWebKeySet) (kid string, claims map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, jwtAlgorithms)
	if err != nil {
		t.Fatalf("access token is not a compact JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("JWS has %d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("typ header = %v, want at+jwt (RFC 9068 §2.1)", typ)
	}
	if h.KeyID == "" {
		t.Fatal("JWS header has no kid")
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %s: %d keys in the JWKS, want 1", h.KeyID, len(keys))
	}
	if keys[0].Algorithm != "" && keys[0].Algorithm != h.Algorithm {
		t.Errorf("header alg %s, JWKS key alg %s", h.Algorithm, keys[0].Algorithm)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with JWKS key %s: %v", h.KeyID, err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return h.KeyID, claims
}

func newJWTFixture(t *testing.T) *ccFixture {
	cfg, secret := ccConfig(t, "jwt")
	return &ccFixture{srv: startServer(t, writeConfig(t, cfg), ""), billingSecret: secret}
}

func TestJWTAccessTokens(t *testing.T) {
	f := newJWTFixture(t)
	tok, err := f.billing().Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials token: %v", err)
	}
	_, c := verifyJWT(t, tok.AccessToken, fetchJWKS(t, f.srv.URL))

	// RFC 9068 §2.2.
	for k, want := range map[string]string{"iss": f.srv.URL, "sub": "billing", "client_id": "billing", "scope": "read write"} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %q", k, c[k], want)
		}
	}
	switch aud := c["aud"].(type) {
	case string:
		if aud == "" {
			t.Error("aud is empty")
		}
	case []any:
		if len(aud) == 0 {
			t.Error("aud is empty")
		}
	default:
		t.Errorf("aud = %v, want a string or a non-empty array", c["aud"])
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if iat == 0 || exp <= iat {
		t.Errorf("exp %v, iat %v: want exp > iat > 0", c["exp"], c["iat"])
	}
	if jti, _ := c["jti"].(string); jti == "" {
		t.Errorf("jti = %v", c["jti"])
	}

	if got := f.introspect(t, tok.AccessToken); got["active"] != true || got["client_id"] != "billing" || got["scope"] != "read write" {
		t.Errorf("introspection = %v", got)
	}
	// A token with a forged payload but the original signature is refused.
	parts := strings.Split(tok.AccessToken, ".")
	forged := parts[0] + "." + parts[1] + "x." + parts[2]
	if got := f.introspect(t, forged); got["active"] != false {
		t.Errorf("tampered JWT introspects as %v", got)
	}

	// JWTs are stored too, so they can be revoked.
	resp, _ := postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "billing", f.billingSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	if got := f.introspect(t, tok.AccessToken); got["active"] != false {
		t.Errorf("revoked JWT introspects as %v", got)
	}
}

var newKeyLine = regexp.MustCompile(`new active key (\S+);`)

func TestKeyRotation(t *testing.T) {
	f := newJWTFixture(t)
	a, err := f.billing("read").Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kidA, _ := verifyJWT(t, a.AccessToken, fetchJWKS(t, f.srv.URL))
	f.srv.Stop()

	keysCmd := func(sub string) (string, string, int) {
		return runPostern(t, "", "keys", sub, "--config", f.srv.Config, "--data", f.srv.DataDir)
	}
	out, errOut, code := keysCmd("rotate")
	if code != 0 {
		t.Fatalf("keys rotate: exit %d:\n%s%s", code, out, errOut)
	}
	m := newKeyLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys rotate does not name the new kid:\n%s", out)
	}
	kidB := m[1]
	if kidB == kidA {
		t.Fatalf("rotation kept kid %s", kidA)
	}

	out, errOut, code = keysCmd("list")
	if code != 0 {
		t.Fatalf("keys list: exit %d:\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("keys list shows %d keys, want 2:\n%s", len(lines), out)
	}
	var active []string
	for _, l := range lines {
		if strings.HasSuffix(l, "\tactive") {
			active = append(active, strings.Fields(l)[0])
		}
	}
	if len(active) != 1 || active[0] != kidB {
		t.Errorf("active keys %v, want exactly [%s]:\n%s", active, kidB, out)
	}
	if !strings.Contains(out, kidA+"\t") || !strings.Contains(out, "retiring") {
		t.Errorf("the old key %s is not listed as retiring:\n%s", kidA, out)
	}

	g := f.restart(t)
	set := fetchJWKS(t, g.srv.URL)
	if len(set.Keys) != 2 || len(set.Key(kidA)) != 1 || len(set.Key(kidB)) != 1 {
		t.Fatalf("JWKS after rotation has %d keys, want %s and %s", len(set.Keys), kidA, kidB)
	}
	if kid, _ := verifyJWT(t, a.AccessToken, set); kid != kidA {
		t.Errorf("token A has kid %s, want %s", kid, kidA)
	}
	if got := g.introspect(t, a.AccessToken); got["active"] != true || got["scope"] != "read" {
		t.Errorf("token A after rotation and restart: introspection %v", got)
	}
	b, err := g.billing().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := verifyJWT(t, b.AccessToken, set); kid != kidB {
		t.Errorf("token B is signed with kid %s, want the new active key %s", kid, kidB)
	}
	if got := g.introspect(t, b.AccessToken); got["active"] != true {
		t.Errorf("token B introspection %v", got)
	}
}

func TestWrongSecretRefusesToStart(t *testing.T) {
	f := newCCFixture(t, "opaque")
	tok, err := f.billing().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Stop()

	args := []string{"--config", f.srv.Config, "--data", f.srv.DataDir}
	other := "another-secret-of-enough-length-0123456789"
	_, errOut, code := runServeFailing(t, []string{"POSTERN_SECRET=" + other}, args...)
	if code == 0 || !strings.Contains(errOut, "system secret") {
		t.Errorf("wrong secret: exit %d, want non-zero with a message about the system secret:\n%s", code, errOut)
	}
	if strings.Contains(errOut, other) || strings.Contains(errOut, testSecret) {
		t.Error("the error message prints a secret")
	}
	// Both ways out, so a newcomer who mixed the examples knows what to do.
	if !strings.Contains(errOut, "start with the secret the data directory "+f.srv.DataDir+" was created with") ||
		!strings.Contains(errOut, "move "+f.srv.DataDir+" aside and start afresh") {
		t.Errorf("the message does not say both ways out (the right secret, or a fresh data directory):\n%s", errOut)
	}

	_, errOut, code = runServeFailing(t, []string{"POSTERN_SECRET=too-short"}, "--config", f.srv.Config, "--data", filepath.Join(t.TempDir(), "data"))
	if code == 0 || !strings.Contains(errOut, "POSTERN_SECRET") {
		t.Errorf("short secret: exit %d, want non-zero naming POSTERN_SECRET:\n%s", code, errOut)
	}

	// The refused start changed nothing: the right secret still opens the
	// data and the token is still there.
	g := f.restart(t)
	if got := g.introspect(t, tok.AccessToken); got["active"] != true {
		t.Errorf("token after the refused start: %v", got)
	}
}

func TestConfigErrorExitCode(t *testing.T) {
	for _, c := range []struct {
		name, config, want string
	}{
		{
			name:   "misspelled grant",
			config: `{"clients": [{"client_id": "svc", "client_secret": "dev-secret", "grant_types": ["pasword"]}]}`,
			want:   `config: clients[0].grant_types: unknown grant "pasword"`,
		},
		{
			name:   "unknown top-level field",
			config: `{"clients": [], "colour": "blue"}`,
			want:   `config: unknown field "colour"`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			_, errOut, code := runServeFailing(t, nil, "--config", writeConfig(t, c.config), "--data", data)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr does not contain %s:\n%s", c.want, errOut)
			}
			if _, err := os.Stat(data); err == nil {
				t.Error("a config error still created the data directory")
			}
		})
	}
}

func TestQuickstartConfigServes(t *testing.T) {
	cfg, err := filepath.Abs("../examples/quickstart/postern.json")
	if err != nil {
		t.Fatal(err)
	}
	f := &ccFixture{srv: startServer(t, cfg, ""), billingSecret: "unused"}
	cc := f.billing()
	cc.ClientID, cc.ClientSecret = "demo-service", "demo-service-secret"
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("demo-service token: %v", err)
	}
	resp, info := postForm(t, f.srv.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, "demo-service", "demo-service-secret")
	if resp.StatusCode != http.StatusOK || info["active"] != true || info["client_id"] != "demo-service" || info["scope"] != "read write" {
		t.Errorf("introspection: status %d, %v", resp.StatusCode, info)
	}
}

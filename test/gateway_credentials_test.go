package test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// A gateway whose client secret the server refuses would say it is ready
// and then answer every request with 503; it refuses to start instead,
// naming the client.
func TestGatewayWrongSecretAtStart(t *testing.T) {
	f := newGWFixture(t, `{}`)
	backend := startEchoBackend(t)
	cfg := writeConfig(t, f.gatewayConfig(t, backend.URL, nil))
	_, stderr, code := runPosternFailing(t, []string{"GATEWAY_CLIENT_SECRET=not-the-secret"}, "gateway", "--config", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "the authorization server refused the gateway's client credentials (client_id gateway)") ||
		!strings.Contains(stderr, "check client_id and client_secret") {
		t.Errorf("the message does not name the refused credentials and the fix:\n%s", stderr)
	}
	if strings.Contains(stderr, "not-the-secret") {
		t.Errorf("the secret is in the log:\n%s", stderr)
	}
}

// At run time a 401 from introspection is a configuration error, logged as
// such, not an outage.
func TestGatewayCredentialsRefusedAtRunTime(t *testing.T) {
	f := newGWFixture(t, `{}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, nil)
	token := f.token(t, "billing", "read")

	// The server's operator replaces the gateway client's secret.
	_, newHash := newClientSecret(t)
	raw, err := os.ReadFile(f.serverConfig)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"client_id": "gateway", "client_secret_hash": "([^"]+)"`).FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatalf("no gateway client in\n%s", raw)
	}
	oldHash := m[1]
	f.srv.reload(strings.Replace(string(raw), oldHash, newHash, 1))
	logged(t, f.srv.logs, 0, "configuration reloaded")

	if code, _ := gwStatus(t, gw.URL+"/search/v1/x", token); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (fail closed)", code)
	}
	// The log line may follow the response by a moment.
	logged(t, gw.logs, 0, "refused the gateway's client credentials (client_id gateway)")
	logs := gw.logs.String()
	if !strings.Contains(logs, "level=ERROR msg=\"configuration error") {
		t.Errorf("the 401 is not logged as a configuration error:\n%s", logs)
	}
	if strings.Contains(logs, "authorization server unavailable") {
		t.Errorf("the 401 is logged as an outage:\n%s", logs)
	}
}

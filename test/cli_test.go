package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// End-to-end checks of the command line as the built binary runs it.

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := runPostern(t, "", "version")
	if code != 0 {
		t.Fatalf("postern version: exit %d\nstderr: %s", code, errOut)
	}
	if !regexp.MustCompile(`^postern \S+( \(commit [0-9a-f]{40}(, modified)?\))?\n$`).MatchString(out) {
		t.Errorf("postern version printed %q, want \"postern VERSION [(commit HASH)]\\n\"", out)
	}
}

// A hash from `postern clients hash` works as client_secret_hash: the
// client gets a token with the secret that was hashed.
func TestCLIClientsHashAuthenticates(t *testing.T) {
	t.Parallel()
	const secret = "my chosen secret 0123"
	out, errOut, code := runPostern(t, secret+"\n", "clients", "hash")
	if code != 0 {
		t.Fatalf("postern clients hash: exit %d\nstderr: %s", code, errOut)
	}
	hash := strings.TrimSpace(out)
	if hash == "" || strings.Contains(hash, "\n") || strings.Contains(hash, secret) {
		t.Fatalf("postern clients hash printed %q, want one hash line", out)
	}
	cfg := fmt.Sprintf(`{
  "clients": [
    {"client_id": "chosen", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read"}
  ]
}`, hash)
	srv := startServer(t, writeConfig(t, cfg), "")
	conf := &clientcredentials.Config{
		ClientID:     "chosen",
		ClientSecret: secret,
		TokenURL:     srv.URL + "/oauth2/token",
		Scopes:       []string{"read"},
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	tok, err := conf.Token(context.Background())
	if err != nil {
		t.Fatalf("token with the hashed secret: %v", err)
	}
	if tok.AccessToken == "" {
		t.Error("empty access token")
	}
	// The wrong secret is still refused.
	conf.ClientSecret = secret + "x"
	if _, err := conf.Token(context.Background()); err == nil {
		t.Error("a wrong secret got a token")
	}
}

// With --log-format json every line the server writes to stderr is a JSON
// object with a message.
func TestCLILogFormatJSON(t *testing.T) {
	t.Parallel()
	cfg, secret := ccConfig(t, "opaque")
	srv := startServer(t, writeConfig(t, cfg), "", "--log-format", "json")
	// Make it log something beyond start-up.
	conf := &clientcredentials.Config{ClientID: "billing", ClientSecret: secret, TokenURL: srv.URL + "/oauth2/token", Scopes: []string{"read"}}
	if _, err := conf.Token(context.Background()); err != nil {
		t.Fatalf("token: %v", err)
	}
	srv.Stop()
	n := 0
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "[stdout] ") {
			continue
		}
		n++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON (%v): %s", err, line)
			continue
		}
		if _, ok := rec["msg"]; !ok {
			t.Errorf("JSON log line has no \"msg\": %s", line)
		}
	}
	if n == 0 {
		t.Error("no log lines on stderr with --log-format json")
	}
}

// postern check on a config with an unknown grant exits 2 and names the field.
func TestCLICheckBadConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.json")
	bad := `{"clients": [{"client_id": "web", "client_secret": "dev-secret-0123456789", "grant_types": ["client_credentials", "teleport"]}]}`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runPostern(t, "", "check", "--config", path)
	if code != 2 {
		t.Errorf("postern check on a bad config: exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "clients[0].grant_types") {
		t.Errorf("postern check stderr does not name clients[0].grant_types:\n%s", errOut)
	}
}

// postern check reads each API's OpenAPI file, from the configuration
// file's directory: a malformed one fails the check, naming the field, the
// file and the problem; fixed, the check passes and counts the API.
func TestCLICheckOpenAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.json")
	spec := filepath.Join(dir, "orders.yaml")
	config := `{"apis": [
  {"id": "pets", "name": "Pets", "base_url": "https://api.example.com/pets", "scopes": {"pets.read": "See the pets"}},
  {"id": "orders", "name": "Orders", "base_url": "https://api.example.com/orders", "openapi": "orders.yaml",
   "scopes": [{"name": "orders.read", "description": "Read your orders"}, {"name": "orders.write", "description": "Place orders"}]}
]}`
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := "openapi: 3.0.3\ninfo:\n  title: Orders\n  version: 1.0.0\npaths:\n  /orders:\n    get: [unclosed\n"
	if err := os.WriteFile(spec, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runPostern(t, "", "check", "--config", path)
	want := "config: apis[1].openapi: " + spec + ": invalid YAML: yaml: line 6: did not find expected ',' or ']'"
	if code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("postern check with a malformed OpenAPI file: exit %d, want 2\nstdout: %s\nstderr: %s\nwant %q", code, out, errOut, want)
	}

	fixed := "openapi: 3.0.3\ninfo:\n  title: Orders\n  version: 1.0.0\npaths:\n  /orders:\n    get:\n      responses:\n        \"200\": {description: Your orders}\n"
	if err := os.WriteFile(spec, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runPostern(t, "", "check", "--config", path)
	if code != 0 || !strings.Contains(out, "2 APIs)") {
		t.Errorf("postern check with a valid OpenAPI file: exit %d, want 0 and 2 APIs\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// serve and gateway answer -h/--help with their usage block on stdout and
// exit 0, like `postern help`; a bad flag still exits 2 with the block.
func TestCLICommandHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "gateway"} {
		for _, flag := range []string{"--help", "-h"} {
			out, errOut, code := runPostern(t, "", cmd, flag)
			if code != 0 || !strings.HasPrefix(out, "Usage:\n  postern "+cmd+" --config FILE") || !strings.Contains(out, "-log-level") || errOut != "" {
				t.Errorf("postern %s %s: exit %d\nstdout:\n%s\nstderr:\n%s", cmd, flag, code, out, errOut)
			}
		}
		_, errOut, code := runPostern(t, "", cmd, "--bogus")
		if code != 2 || !strings.Contains(errOut, "flag provided but not defined: -bogus\nUsage:\n  postern "+cmd) {
			t.Errorf("postern %s --bogus: exit %d\n%s", cmd, code, errOut)
		}
	}
}

// A bare `postern` points a newcomer at the quickstart.
func TestCLIBarePointsAtQuickstart(t *testing.T) {
	t.Parallel()
	_, errOut, code := runPostern(t, "")
	if code != 2 || !strings.Contains(errOut, "postern serve --config examples/quickstart/postern.json") {
		t.Errorf("postern: exit %d\n%s", code, errOut)
	}
}

// An address in use names what sets it.
func TestCLIAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, `{}`)
	_, errOut, code := runServeFailing(t, nil, "--config", cfg, "--data", t.TempDir(), "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(errOut, "listen on "+ln.Addr().String()+" (set by --addr or the config's addr)") ||
		!strings.Contains(errOut, "address already in use") {
		t.Errorf("serve on a taken address: exit %d\n%s", code, errOut)
	}
	gw := writeConfig(t, `{"listen": "`+ln.Addr().String()+`", "routes": [{"path_prefix": "/p", "upstream": "http://127.0.0.1:1", "public": true}]}`)
	_, errOut, code = runPosternFailing(t, nil, "gateway", "--config", gw)
	if code != 1 || !strings.Contains(errOut, "(set by the config's listen)") || !strings.Contains(errOut, "address already in use") {
		t.Errorf("gateway on a taken address: exit %d\n%s", code, errOut)
	}
}

// The ready line carries the PID that kill and kill -HUP take.
func TestReadyLogHasPID(t *testing.T) {
	srv := startServer(t, writeConfig(t, `{}`), "")
	want := fmt.Sprintf(`msg="postern ready" pid=%d `, srv.cmd.Process.Pid)
	logged(t, srv.logs, 0, want)
	gw := startGateway(t, `{"listen": "127.0.0.1:0", "routes": [{"path_prefix": "/p", "upstream": "http://127.0.0.1:1", "public": true}]}`)
	want = fmt.Sprintf(`msg="postern gateway ready" pid=%d `, gw.cmd.Process.Pid)
	logged(t, gw.logs, 0, want)
}

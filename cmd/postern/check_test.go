package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"clients": [{"client_id": "web", "client_secret": "dev-secret-0123456789", "grant_types": ["client_credentials"]}]}`), 0o600)
	os.WriteFile(bad, []byte(`{"clients": [{"client_id": "web", "grant_types": ["pasword"]}]}`), 0o600)

	for _, tc := range []struct {
		name        string
		args        []string
		code        int
		out, errOut string
	}{
		{"good server config", []string{"check", "--config", good}, 0, good + ": ok (1 clients, 0 users, 0 SAML providers, 0 APIs)", ""},
		{"warnings are shown", []string{"check", "--config", good}, 0, "warning: clients[0] (web) has a plain client_secret", ""},
		{"bad config names the field", []string{"check", "--config", good, "--config", bad}, 2, good + ": ok", bad + `: config: clients[0]: a confidential client needs client_secret_hash`},
		{"quickstart and gateway example", []string{"check", "--config", "../../examples/quickstart/postern.json", "--gateway-config", "../../examples/gateway/gateway.json"}, 0, "gateway.json: ok (", ""},
		{"API catalogue example", []string{"check", "--config", "../../examples/apis/postern.json"}, 0, "postern.json: ok (0 clients, 0 users, 0 SAML providers, 1 APIs)", ""},
		{"nothing to check", []string{"check"}, 2, "", "usage: postern check"},
		{"missing file", []string{"check", "--config", filepath.Join(dir, "nope.json")}, 2, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DEMO_SERVICE_SECRET", "demo-service-secret")
			var out, errOut strings.Builder
			code := run(tc.args, strings.NewReader(""), &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
				t.Errorf("exit %d (want %d)\nstdout: %s(want %q)\nstderr: %s(want %q)", code, tc.code, out.String(), tc.out, errOut.String(), tc.errOut)
			}
		})
	}
}

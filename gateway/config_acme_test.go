package gateway

import (
	"strings"
	"testing"
)

func TestParseConfigACME(t *testing.T) {
	env := mapEnv(map[string]string{"GW_SECRET": "x"})
	with := func(field string) string {
		return strings.Replace(gwMinimal, "{\n", "{\n  "+field+",\n", 1)
	}
	tests := []struct{ name, raw, want string }{
		{"ok", with(`"data_dir": "/var/lib/gw", "tls": {"acme": {"domains": ["api.example.com"]}}`), ""},
		{"no data_dir", with(`"tls": {"acme": {"domains": ["api.example.com"]}}`), "config: data_dir: is required with tls.acme"},
		{"both", with(`"data_dir": "d", "tls": {"cert_file": "c.pem", "acme": {"domains": ["api.example.com"]}}`), "config: tls.acme: set cert_file and key_file, or acme, not both"},
		{"bad name", with(`"data_dir": "d", "tls": {"acme": {"domains": ["api.example.com", "*.example.com"], "challenge": "http-01", "http_listen": ":80"}}`),
			`config: tls.acme.domains[1]: "*.example.com": a wildcard cannot be proven over http-01`},
		{"unknown field", with(`"data_dir": "d", "tls": {"acme": {"domains": ["api.example.com"], "staging": true}}`), `config: tls.acme: unknown field "staging"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.raw), env)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.ACME == nil || c.TLS == nil || c.DataDir != "/var/lib/gw" {
					t.Errorf("acme config not kept: %+v", c)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestACMEExampleConfig(t *testing.T) {
	c, err := LoadConfig("../examples/acme/gateway.json", mapEnv(map[string]string{"GATEWAY_CLIENT_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ACME == nil || c.ACME.Domains[0] != "api.example.com" || !strings.Contains(c.ACME.DirectoryURL, "staging") {
		t.Errorf("examples/acme/gateway.json: %+v", c.ACME)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern-auth/postern/clients"
)

func TestConfigACME(t *testing.T) {
	tests := []struct{ name, tls, issuer, want string }{
		{"ok", `{"acme": {"domains": ["auth.example.com"]}}`, "https://auth.example.com", ""},
		{"both", `{"cert_file": "c.pem", "key_file": "k.pem", "acme": {"domains": ["auth.example.com"]}}`, "", "config: tls.acme: set cert_file and key_file, or acme, not both"},
		{"plain issuer", `{"acme": {"domains": ["auth.example.com"]}}`, "http://auth.example.com", `config: issuer: "http://auth.example.com" is plain http while tls is set`},
		{"http directory", `{"acme": {"domains": ["auth.example.com"], "directory_url": "http://ca.internal/dir"}}`, "", `config: tls.acme.directory_url: "http://ca.internal/dir" is plain http`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := `{"tls": ` + tc.tls
			if tc.issuer != "" {
				raw += `, "issuer": "` + tc.issuer + `"`
			}
			path := filepath.Join(t.TempDir(), "postern.json")
			if err := os.WriteFile(path, []byte(raw+"}"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(path, func(string) string { return "" })
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.ACME == nil || cfg.TLS == nil {
					t.Errorf("tls.acme not kept: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestACMEExampleServerConfig(t *testing.T) {
	hash, err := clients.HashClientSecret(strings.Repeat("s", 43))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("../../examples/acme/postern.json", func(name string) string {
		if name == "GATEWAY_CLIENT_SECRET_HASH" {
			return hash
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ACME == nil || cfg.ACME.Challenge != "http-01" || cfg.ACME.HTTPListen != ":80" {
		t.Errorf("examples/acme/postern.json: %+v", cfg.ACME)
	}
}

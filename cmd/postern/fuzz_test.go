package main

import (
	"os"
	"testing"
)

// FuzzParseConfig feeds the server's configuration parser (top level and
// every part's block): a bad file is an error naming what is wrong, never
// a panic.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"../../examples/quickstart/postern.json", "../../examples/saml/local.json"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"issuer": "http://127.0.0.1:4444", "tokens": {"access_token_ttl": "1h", "refresh_retry_window": "0s"}, "clients": [{"client_id": "c", "client_secret": "${S}", "grant_types": ["client_credentials"], "scope": "read"}]}`))
	f.Add([]byte(`{"clients": [{"client_id": "spa", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code","refresh_token"], "redirect_uris": ["http://127.0.0.1:3000/cb"]}], "users": [{"username": "a", "password": "p", "claims": {"email": "a@b"}}], "trusted_proxies": ["::1/128"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseConfig(raw, func(string) string { return "dev-secret-dev-secret-dev-secret" })
	})
}

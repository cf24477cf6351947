package clients

import (
	"strings"
	"testing"
)

// The full table of client rules runs end to end through the server's
// file (cmd/postern/config_test.go); these pin the entry point's own
// contract: the path it is given prefixes every error, warnings say which
// entry they are about.
func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"unknown field", `{"client_id": "a", "scopes": "x"}`, `config: clients[3]: unknown field "scopes"`},
		{"client_id", `{"client_id": "a b"}`, `config: clients[3].client_id: "a b" must be 1-128 characters`},
		{"grant", `{"client_id": "a", "token_endpoint_auth_method": "none", "grant_types": ["magic"]}`, `config: clients[3].grant_types: unknown grant "magic"`},
		{"redirect", `{"client_id": "a", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"], "redirect_uris": ["http://example.com/cb"]}`,
			`config: clients[3].redirect_uris[0]: "http://example.com/cb": plain http is only allowed for loopback addresses`},
		{"scope", `{"client_id": "a", "client_secret": "s", "grant_types": ["client_credentials"], "scope": "r\"w"}`, `config: clients[3].scope: invalid scope`},
	}
	lt := Lifetimes{AccessToken: 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseConfig("clients[3]", []byte(tt.raw), lt)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant prefix %s", err, tt.want)
			}
		})
	}
	c, warn, err := ParseConfig("clients[3]", []byte(`{"client_id": "svc", "client_secret": "s", "grant_types": ["client_credentials"]}`), lt)
	if err != nil || c.ID != "svc" || c.Lifetimes != lt || len(warn) != 1 || !strings.HasPrefix(warn[0], "clients[3] (svc) has a plain client_secret") {
		t.Errorf("ParseConfig = %+v, %q, %v", c, warn, err)
	}
}

package authz

import (
	"testing"
	"time"
)

func TestParseTokensConfig(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"format", `{"access_token_format": "jwe"}`, `config: tokens.access_token_format: unknown format "jwe" (want "opaque" or "jwt")`},
		// Issue 15: the duration's own field is named, not just "tokens".
		{"bad duration", `{"access_token_ttl": "forever"}`, `config: tokens.access_token_ttl: bad duration "forever"`},
		{"below 1s", `{"refresh_token_ttl": "500ms"}`, `config: tokens.refresh_token_ttl: must be at least 1s, got 500ms`},
		{"implicit", `{"implicit_access_token_ttl": "25h"}`, `config: tokens.implicit_access_token_ttl: 25h0m0s exceeds the 24h limit for implicit tokens`},
		{"code", `{"authorization_code_ttl": "2h"}`, `config: tokens.authorization_code_ttl: 2h0m0s is too long; codes must be short-lived (at most 1h)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseTokensConfig("tokens", []byte(tt.raw)); err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant %s", err, tt.want)
			}
		})
	}
	format, lt, err := ParseTokensConfig("tokens", nil)
	if err != nil || format != FormatOpaque || lt.AccessToken != DefaultAccessTTL || lt.ImplicitAccessToken != DefaultImplicitTTL ||
		lt.RefreshToken != DefaultRefreshTTL || lt.AuthorizationCode != DefaultCodeTTL {
		t.Errorf("defaults: %q %+v %v", format, lt, err)
	}
}

func TestParseLoginConfig(t *testing.T) {
	for raw, want := range map[string]string{
		`{"session_ttl": "1 day"}`:  `config: login.session_ttl: bad duration "1 day"`,
		`{"session_ttl": "59s"}`:    `config: login.session_ttl: 59s is outside 1m to 720h`,
		`{"session_timeout": "8h"}`: `config: login: unknown field "session_timeout"`,
	} {
		if _, err := ParseLoginConfig("login", []byte(raw)); err == nil || err.Error() != want {
			t.Errorf("ParseLoginConfig(%s) = %v, want %s", raw, err, want)
		}
	}
	if d, err := ParseLoginConfig("login", nil); err != nil || d != DefaultSessionTTL {
		t.Errorf("default = %v, %v", d, err)
	}
	if d, err := ParseLoginConfig("login", []byte(`{"session_ttl": "1h"}`)); err != nil || d != time.Hour {
		t.Errorf("1h = %v, %v", d, err)
	}
}

package identity

import (
	"strings"
	"testing"
)

func TestParseUserConfig(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"unknown field", `{"username": "a", "pasword": "x"}`, `config: users[2]: unknown field "pasword"`},
		{"no username", `{"password": "x"}`, `config: users[2].username: is required`},
		{"colon", `{"username": "corp:a", "password": "x"}`, `config: users[2].username: "corp:a" must be 1-256 characters without spaces or colons`},
		{"both", `{"username": "a", "password": "x", "password_hash": "y"}`, `config: users[2]: set password_hash or password, not both`},
		{"no password", `{"username": "a"}`, "config: users[2]: password_hash is required"},
		{"bad hash", `{"username": "a", "password_hash": "plain"}`, "config: users[2].password_hash: "},
		{"reserved claim", `{"username": "a", "password": "x", "claims": {"sub": "b"}}`, "config: users[2].claims.sub: is reserved by the token format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseUserConfig("users[2]", []byte(tt.raw))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant prefix %s", err, tt.want)
			}
		})
	}
	u, warn, err := ParseUserConfig("users[2]", []byte(`{"username": "alice", "password": "pw", "claims": {"email": "a@example.com"}}`))
	if err != nil || u.Username != "alice" || u.Claims["email"] != "a@example.com" || len(warn) != 1 || !strings.HasPrefix(warn[0], "users[2] (alice) has a plain password") {
		t.Errorf("ParseUserConfig = %+v, %q, %v", u, warn, err)
	}
}

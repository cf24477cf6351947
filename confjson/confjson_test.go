package confjson

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

type testBlock struct {
	Name   string          `json:"name"`
	TTL    Duration        `json:"ttl"`
	Count  int             `json:"count"`
	Nested json.RawMessage `json:"nested"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, raw, prefix, want string
	}{
		{"unknown field", `{"nmae": "x"}`, "tokens", `config: tokens: unknown field "nmae"`},
		{"type mismatch", `{"count": "many"}`, "clients[1]", `config: clients[1].count: expected int, got string`},
		// The correction of issue 15: the duration's own field is named.
		{"bad duration", `{"ttl": "forever"}`, "tokens", `config: tokens.ttl: bad duration "forever"`},
		{"duration number", `{"ttl": 3600}`, "login", `config: login.ttl: expected a duration string such as "1h" or "30m"`},
		{"block not an object", `"1h"`, "tokens", `config: tokens: expected an object, got string`},
		{"duration at top", `{"ttl": "1d"}`, "", `config: ttl: bad duration "1d"`},
		{"trailing data", `{} {}`, "keys", `config: keys: unexpected data after the JSON value`},
		{"truncated", `{"name": `, "", `config: unexpected end of JSON`},
		{"syntax", `{"name" "x"}`, "", "config: invalid JSON at line 1, column 9: invalid character '\"' after object key\n{\"name\" \"x\"}\n        ^"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b testBlock
			err := Decode([]byte(tt.raw), &b, tt.prefix)
			var ce *Error
			if err == nil || err.Error() != tt.want || !errors.As(err, &ce) {
				t.Errorf("Decode(%s) = %v (%T)\nwant %s", tt.raw, err, err, tt.want)
			}
		})
	}
	var b testBlock
	if err := Decode([]byte(`{"name": "a", "ttl": "90s", "nested": {"x": 1}}`), &b, ""); err != nil || b.TTL.Duration != 90*time.Second || string(b.Nested) != `{"x": 1}` {
		t.Errorf("Decode = %v, %+v", err, b)
	}
}

func TestExpandEnv(t *testing.T) {
	env := func(name string) string { return map[string]string{"A": "alpha", "Q": `"}`}[name] }
	tests := []struct {
		name, raw, want, err string
	}{
		{"expanded", `{"a": "${A}-${A}", "n": 1.50}`, `{"a":"alpha-alpha","n":1.50}`, ""},
		{"no injection", `{"a": "${Q}"}`, `{"a":"\"}"}`, ""},
		{"in a list", `{"l": ["x", "${B}"]}`, "", "config: l[1]: environment variable B is not set"},
		{"system secret", `{"c": [{"name": "${POSTERN_SECRET}"}]}`, "", "config: c[0].name: ${POSTERN_SECRET} may not appear in the configuration"},
		{"trailing", `{"a": 1}}`, "", "config: unexpected data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ExpandEnv([]byte(tt.raw), env)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Errorf("error = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil || string(out) != tt.want {
				t.Errorf("ExpandEnv = %s, %v; want %s", out, err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"", 5 * time.Second, ""},
		{"0s", 0, ""},
		{"2m", 2 * time.Minute, ""},
		{"soon", 0, `config: cache.ttl: expected a duration such as "30s" or "5m", got "soon"`},
		{"-1s", 0, "config: cache.ttl: must be at least 0s, got -1s"},
	}
	for _, tt := range tests {
		d, err := ParseDuration("cache.ttl", tt.in, 5*time.Second, 0)
		if (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) || d != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %s", tt.in, d, err, tt.want, tt.err)
		}
	}
}

func TestIssuer(t *testing.T) {
	for in, want := range map[string]string{
		"https://auth.example.com/": "https://auth.example.com",
		"http://127.0.0.1:4444":     "http://127.0.0.1:4444",
		"ftp://x":                   "",
		"https://a.example/?":       "",
		"https://u@a.example":       "",
	} {
		got, err := Issuer(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("Issuer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestHTTPSURL pins the one rule for URLs Postern fetches from or sends
// tokens to (SAML metadata, catalogue base URLs): plain http only where
// nothing in between can read or alter it.
func TestHTTPSURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://idp.example.com/md?x=1":   true,
		"http://127.0.0.1:7000/metadata":   true,
		"http://[::1]:7000/metadata":       true,
		"http://localhost/md":              true,
		"http://idp.example.com/md":        false,
		"http://localhost.evil.example/md": false,
		"http://localhost@evil.example/md": false,
		"http://10.0.0.1/md":               false,
		"https://u:p@idp.example.com/md":   false,
		"https://idp.example.com/md#":      false,
		"ftp://idp.example.com/md":         false,
		"/md":                              false,
		"https:idp.example.com":            false,
	} {
		if err := HTTPSURL(in); (err == nil) != ok {
			t.Errorf("HTTPSURL(%q) = %v; want ok %v", in, err, ok)
		}
	}
}

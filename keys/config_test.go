package keys

import (
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"unknown field", `{"algo": "RS256"}`, `config: keys: unknown field "algo"`},
		{"algorithm", `{"algorithm": "HS256"}`, `config: keys.algorithm: unknown algorithm "HS256" (want ES256 or RS256)`},
		{"bad duration", `{"rotation_overlap": "1d"}`, `config: keys.rotation_overlap: bad duration "1d"`},
		{"negative overlap", `{"rotation_overlap": "-1h"}`, `config: keys.rotation_overlap: must be positive`},
		{"reload", `{"reload_interval": "10ms"}`, `config: keys.reload_interval: must be at least 1s, got 10ms`},
		{"rotate", `{"rotate_after": "1h"}`, `config: keys.rotate_after: 1h0m0s is shorter than 24h`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseConfig("keys", []byte(tt.raw)); err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant %s", err, tt.want)
			}
		})
	}
	s, err := ParseConfig("keys", nil)
	if want := (Settings{Algorithm: ES256, Overlap: DefaultOverlap, RotateAfter: DefaultRotateAfter}); err != nil || s != want {
		t.Errorf("defaults = %+v, %v; want %+v", s, err, want)
	}
	s, err = ParseConfig("keys", []byte(`{"algorithm": "RS256", "rotation_overlap": "48h", "reload_interval": "5s", "rotate_after": "720h"}`))
	if want := (Settings{Algorithm: RS256, Overlap: 48 * time.Hour, Reload: 5 * time.Second, RotateAfter: 720 * time.Hour}); err != nil || s != want {
		t.Errorf("ParseConfig = %+v, %v; want %+v", s, err, want)
	}
}

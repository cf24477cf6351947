package keys

import (
	"encoding/json"
	"time"

	"github.com/postern-auth/postern/confjson"
)

// FileConfig is the keys block as written in the server's file.
type FileConfig struct {
	Algorithm string            `json:"algorithm"`
	Overlap   confjson.Duration `json:"rotation_overlap"`
	Reload    confjson.Duration `json:"reload_interval"` // shared stores only
	// RotateAfter is the age at which the server replaces its signing key.
	RotateAfter confjson.Duration `json:"rotate_after"`
}

// Settings is a validated keys block, defaults filled in.
type Settings struct {
	Algorithm string
	Overlap   time.Duration
	// Reload is how often a replica re-reads a shared store's keys; 0 for
	// the command's default.
	Reload      time.Duration
	RotateAfter time.Duration
}

// DefaultRotateAfter is the signing key's age at which it is replaced.
const DefaultRotateAfter = 90 * 24 * time.Hour

// ParseConfig reads the keys block raw (absent: all defaults) at path.
// Whether the overlap outlives the tokens is the caller's to check: the
// lifetimes are not the keys' business.
func ParseConfig(path string, raw json.RawMessage) (Settings, error) {
	var kc FileConfig
	if len(raw) > 0 {
		if err := confjson.Decode(raw, &kc, path); err != nil {
			return Settings{}, err
		}
	}
	s := Settings{Algorithm: kc.Algorithm, Overlap: kc.Overlap.Duration, Reload: kc.Reload.Duration, RotateAfter: kc.RotateAfter.Duration}
	switch s.Algorithm {
	case "":
		s.Algorithm = ES256
	case ES256, RS256:
	default:
		return s, confjson.Errorf(path+".algorithm", "unknown algorithm %q (want ES256 or RS256)", kc.Algorithm)
	}
	if d := s.Reload; d != 0 && d < time.Second {
		return s, confjson.Errorf(path+".reload_interval", "must be at least 1s, got %s", d)
	}
	switch d := s.RotateAfter; {
	case d == 0:
		s.RotateAfter = DefaultRotateAfter
	case d < 24*time.Hour:
		return s, confjson.Errorf(path+".rotate_after", "%s is shorter than 24h", d)
	}
	switch {
	case s.Overlap == 0:
		s.Overlap = DefaultOverlap
	case s.Overlap < 0:
		return s, confjson.Errorf(path+".rotation_overlap", "must be positive")
	}
	return s, nil
}

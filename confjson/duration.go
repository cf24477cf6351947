package confjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Duration reads a Go duration string ("1h", "30m") where zero means "the
// default". A value that does not parse is reported under its own field
// ("tokens.access_token_ttl: bad duration ...") by Decode.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return durationError(`expected a duration string such as "1h" or "30m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return durationError(fmt.Sprintf("bad duration %q", s))
	}
	d.Duration = v
	return nil
}

// durationError is an UnmarshalTypeError because encoding/json adds the
// field path to that type only; decodeError turns it back into msg.
func durationError(msg string) error {
	return &json.UnmarshalTypeError{Value: msg, Type: reflect.TypeFor[Duration]()}
}

// ParseDuration reads a duration kept as a string, for files where an
// absent value ("" gives def) must differ from an explicit "0s"; a value
// below min is refused.
func ParseDuration(path, s string, def, min time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, Errorf(path, `expected a duration such as "30s" or "5m", got %q`, s)
	}
	if d < min {
		return 0, Errorf(path, "must be at least %s, got %s", min, d)
	}
	return d, nil
}

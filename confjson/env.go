package confjson

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandEnv replaces ${NAME} in every string value, so secrets stay out of
// git. It works on the parsed tree, so a value cannot inject JSON.
func ExpandEnv(raw []byte, getenv func(string) string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, decodeError(err, raw, "")
	}
	// Token rather than More: More reports false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf("", "unexpected data after the JSON value")
	}
	out, err := expandValue(tree, "", getenv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func expandValue(v any, path string, getenv func(string) string) (any, error) {
	switch t := v.(type) {
	case string:
		return expandString(t, path, getenv)
	case map[string]any:
		for k, e := range t {
			x, err := expandValue(e, Join(path, k), getenv)
			if err != nil {
				return nil, err
			}
			t[k] = x
		}
	case []any:
		for i, e := range t {
			x, err := expandValue(e, Index(path, i), getenv)
			if err != nil {
				return nil, err
			}
			t[i] = x
		}
	}
	return v, nil
}

func expandString(s, path string, getenv func(string) string) (string, error) {
	var missing, forbidden string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if name == "POSTERN_SECRET" {
			// The system secret keys every token and key; no configuration
			// value has a reason to contain it, and a display name would
			// publish it.
			if forbidden == "" {
				forbidden = name
			}
			return ""
		}
		val := getenv(name)
		if val == "" && missing == "" {
			missing = name
		}
		return val
	})
	if forbidden != "" {
		return "", Errorf(path, "${%s} may not appear in the configuration", forbidden)
	}
	if missing != "" {
		return "", Errorf(path, "environment variable %s is not set", missing)
	}
	return out, nil
}

package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/postern-auth/postern/confjson"
)

// FileConfig is one apis[] entry as written in the server's file (names
// fixed by DESIGN.md). Scopes is kept raw: it may be an object or an array.
type FileConfig struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	BaseURL     string          `json:"base_url"`
	Scopes      json.RawMessage `json:"scopes"`
	Tier        string          `json:"tier"`
	OpenAPI     string          `json:"openapi"`
}

// Bounds on what the portal and the consent page show.
const (
	maxNameRunes        = 100
	maxDescriptionRunes = 2000
	maxScopeDescRunes   = 200
)

var (
	// The ID is a path segment (/portal/apis/{id}); a leading letter or
	// digit keeps "." and ".." out, which a router would clean away.
	idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	// The gateway's rule for tier names (gateway/config.go), so a tier
	// named here can be defined there.
	tierPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// ParseAPIConfig decodes and checks the apis[] entry raw at path (for
// example "apis[1]"). The openapi file is not read here: see ReadOpenAPI.
func ParseAPIConfig(path string, raw json.RawMessage) (*API, error) {
	var fc FileConfig
	if err := confjson.Decode(raw, &fc, path); err != nil {
		return nil, err
	}
	return fc.Validate(path)
}

// Validate checks the entry at path.
func (fc FileConfig) Validate(path string) (*API, error) {
	a := &API{Path: path, ID: fc.ID, Name: fc.Name, Description: fc.Description, Tier: fc.Tier, OpenAPIFile: fc.OpenAPI}
	switch {
	case fc.ID == "":
		return nil, confjson.Errorf(path+".id", "is required")
	case !idPattern.MatchString(fc.ID):
		return nil, confjson.Errorf(path+".id", "%q must be 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit (it appears in URLs)", fc.ID)
	}
	if err := checkText(fc.Name, maxNameRunes, true); err != nil {
		return nil, confjson.Errorf(path+".name", "%v", err)
	}
	if err := checkText(fc.Description, maxDescriptionRunes, false); err != nil {
		return nil, confjson.Errorf(path+".description", "%v", err)
	}
	if fc.BaseURL == "" {
		return nil, confjson.Errorf(path+".base_url", "is required")
	}
	if err := checkBaseURL(fc.BaseURL); err != nil {
		return nil, confjson.Errorf(path+".base_url", "%v", err)
	}
	a.BaseURL = fc.BaseURL
	scopes, err := parseScopes(path+".scopes", fc.Scopes)
	if err != nil {
		return nil, err
	}
	a.Scopes = scopes
	if fc.Tier != "" && !tierPattern.MatchString(fc.Tier) {
		return nil, confjson.Errorf(path+".tier", "%q must be 1-64 characters of A-Z a-z 0-9 . _ - (the gateway's tier names)", fc.Tier)
	}
	return a, nil
}

// checkText bounds a human text shown on pages; required text must hold
// more than blanks.
func checkText(s string, maxRunes int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return fmt.Errorf("is required")
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case utf8.RuneCountInString(s) > maxRunes:
		return fmt.Errorf("is longer than %d characters", maxRunes)
	}
	return nil
}

// checkBaseURL wants an absolute https URL (plain http only on loopback,
// for development) without a query: clients send their tokens there.
func checkBaseURL(s string) error {
	if err := confjson.HTTPSURL(s); err != nil {
		return fmt.Errorf("%w (clients send tokens there)", err)
	}
	// Contains also catches a bare "?", which url.Parse records as an
	// empty query.
	if strings.Contains(s, "?") {
		return fmt.Errorf("%q must not contain a query", s)
	}
	return nil
}

// parseScopes reads either form of scopes: an object of name →
// description (listed sorted by name) or an array of {name, description}
// (kept in its order).
func parseScopes(path string, raw json.RawMessage) ([]Scope, error) {
	trimmed := bytes.TrimSpace(raw)
	var scopes []Scope
	var err error
	switch {
	case len(trimmed) == 0 || string(trimmed) == "null":
		return nil, confjson.Errorf(path, "is required: list the scopes the API offers, each with a short description")
	case trimmed[0] == '{':
		scopes, err = parseScopeObject(path, trimmed)
	case trimmed[0] == '[':
		scopes, err = parseScopeArray(path, trimmed)
	default:
		return nil, confjson.Errorf(path, `expected an object {"scope": "description"} or an array [{"name": ..., "description": ...}]`)
	}
	if err != nil {
		return nil, err
	}
	if len(scopes) == 0 {
		return nil, confjson.Errorf(path, "is empty: list at least one scope")
	}
	return scopes, nil
}

// parseScopeObject walks the object's tokens rather than decoding it into a
// map, which would keep the last of two equal keys without a word.
func parseScopeObject(path string, raw []byte) ([]Scope, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, confjson.Errorf(path, "%v", err)
	}
	var scopes []Scope
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, confjson.Errorf(path, "invalid JSON: %v", err)
		}
		name := tok.(string) // object keys are strings
		var desc string
		if err := dec.Decode(&desc); err != nil {
			return nil, confjson.Errorf(path+"."+name, "expected the scope's description (a string)")
		}
		if seen[name] {
			return nil, confjson.Errorf(path+"."+name, "is listed twice")
		}
		seen[name] = true
		s := Scope{Name: name, Description: desc}
		if err := s.check(path + "." + name); err != nil {
			return nil, err
		}
		scopes = append(scopes, s)
	}
	slices.SortFunc(scopes, func(a, b Scope) int { return strings.Compare(a.Name, b.Name) })
	return scopes, nil
}

func parseScopeArray(path string, raw []byte) ([]Scope, error) {
	var items []json.RawMessage
	if err := confjson.Decode(raw, &items, path); err != nil {
		return nil, err
	}
	scopes := make([]Scope, 0, len(items))
	seen := map[string]int{}
	for i, item := range items {
		at := confjson.Index(path, i)
		var s Scope
		if err := confjson.Decode(item, &s, at); err != nil {
			return nil, err
		}
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			return nil, confjson.Errorf(at+".name", "%q is already listed at %s", s.Name, confjson.Index(path, j))
		}
		seen[s.Name] = i
		if err := s.checkEntry(at); err != nil {
			return nil, err
		}
		scopes = append(scopes, s)
	}
	return scopes, nil
}

// check validates a scope of the object form, where path names the scope.
func (s Scope) check(path string) error {
	if !confjson.ScopeToken(s.Name) {
		return confjson.Errorf(path, "%q is not a scope token (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)", s.Name)
	}
	if err := checkScopeDescription(s.Description); err != nil {
		return confjson.Errorf(path, "%v", err)
	}
	return nil
}

// checkEntry validates a scope of the array form, where path names the
// entry and its fields are named in turn.
func (s Scope) checkEntry(path string) error {
	if s.Name == "" {
		return confjson.Errorf(path+".name", "is required")
	}
	if !confjson.ScopeToken(s.Name) {
		return confjson.Errorf(path+".name", "%q is not a scope token (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)", s.Name)
	}
	if err := checkScopeDescription(s.Description); err != nil {
		return confjson.Errorf(path+".description", "%v", err)
	}
	return nil
}

func checkScopeDescription(d string) error {
	if strings.TrimSpace(d) == "" {
		return fmt.Errorf("the description is empty: the consent page shows it to users")
	}
	if err := checkText(d, maxScopeDescRunes, true); err != nil {
		return fmt.Errorf("the description %v", err)
	}
	return nil
}

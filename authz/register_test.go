package authz

import (
	"encoding/json"
	"testing"
)

// TestJSONProblem: a registration that is not the right JSON is told what
// is wrong, by member name, without the document echoed back.
func TestJSONProblem(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"client_name": `, "malformed JSON."},
		{`["x"]`, "a JSON array instead."},
		{`{"redirect_uris": "https://app.example/cb"}`, "redirect_uris must be an array of strings."},
		{`{"redirect_uris": [1]}`, "redirect_uris must hold strings, not a JSON number."},
		{`{"scope": {"secret-looking": "value"}}`, "scope must hold strings, not a JSON object."},
	} {
		var req registrationRequest
		if got := jsonProblem(json.Unmarshal([]byte(c.doc), &req)); got != c.want {
			t.Errorf("%s: %q, want %q", c.doc, got, c.want)
		}
	}
}

package authz

import (
	"net/http"
	"strings"
	"testing"
)

// TestStateAnyLength: RFC 6749 §4.1.1 sets no minimum length for state,
// and §4.1.2.1 has no invalid_state error. Any non-empty state comes back
// unchanged with the code; a request without one is refused with an error
// code the RFC defines.
func TestStateAnyLength(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	for _, state := range []string{"xyz", "1", "s-0123456789"} {
		q := codeParams("spa", spaCallback)
		q.Set("state", state)
		r := b.authorize(q)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, spaCallback+"?") {
			t.Errorf("state=%s: %s", state, r)
			continue
		}
		if got := r.locationParams(t); got.Get("code") == "" || got.Get("state") != state || got.Get("error") != "" {
			t.Errorf("state=%s: callback %v, want a code and the state", state, got)
		}
	}
	q := codeParams("spa", spaCallback)
	q.Del("state")
	r := b.authorize(q)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, spaCallback+"?") {
		t.Fatalf("no state: %s", r)
	}
	if got := r.locationParams(t); got.Get("error") != "invalid_request" || got.Get("code") != "" {
		t.Errorf("no state: callback %v, want error=invalid_request", got)
	}
}

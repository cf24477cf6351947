package authz

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestDiscoveryAuthMethods: each endpoint's advertised client
// authentication methods are the ones it takes. A public client may revoke
// its own tokens (RFC 7009 §2.1), so revocation lists "none"; introspection
// takes only confidential clients, so it does not.
func TestDiscoveryAuthMethods(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("discovery %d %s: %v", rec.Code, rec.Body, err)
	}
	methods := func(member string) []string {
		var out []string
		list, _ := doc[member].([]any)
		for _, m := range list {
			s, _ := m.(string)
			out = append(out, s)
		}
		return out
	}
	for member, wantNone := range map[string]bool{
		"token_endpoint_auth_methods_supported":         true,
		"revocation_endpoint_auth_methods_supported":    true,
		"introspection_endpoint_auth_methods_supported": false,
	} {
		got := methods(member)
		if !slices.Contains(got, "client_secret_basic") || slices.Contains(got, "none") != wantNone {
			t.Errorf("%s = %v; want client_secret_basic, and none: %v", member, got, wantNone)
		}
	}
}

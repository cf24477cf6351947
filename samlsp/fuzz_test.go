package samlsp

import (
	"context"
	"testing"

	"github.com/postern-auth/postern/samlsp/samltest"
)

// FuzzConsume feeds the bridge's own entry point what arrives in the
// SAMLResponse form field. Nothing but a response signed by the IdP for a
// pending request may log anyone in; nothing may panic.
func FuzzConsume(f *testing.F) {
	fx := newSPFixture(f, ProviderConfig{})
	reqID := samltest.NewID()
	l := fx.login(reqID)
	f.Add(fx.encode(f, l, fx.idp.Assertion(l), fx.idp.Signer, nil, false))
	f.Add(fx.encode(f, l, fx.idp.Assertion(l), nil, nil, false))
	f.Add(fx.encode(f, l, fx.idp.Assertion(l), fx.idp.Signer, nil, true))
	f.Fuzz(func(t *testing.T, resp string) {
		// Another request ID than the seeds': a seed that verifies would
		// otherwise log in (that is a valid response, not a finding).
		got, err := fx.p.Consume(context.Background(), resp, []string{"id-fuzz-pending"})
		if err == nil {
			t.Fatalf("a fuzzed response logged in %+v", got)
		}
	})
}

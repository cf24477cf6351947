package authz

import (
	"context"
	"testing"

	"github.com/ory/fosite"
)

// A token of the wrong kind, or without Postern's prefix, has no signature
// to look up: introspection of garbage costs no store read.
func TestPrefixedSignatures(t *testing.T) {
	s := newPrefixedStrategy(&fosite.Config{GlobalSecret: []byte("0123456789abcdef0123456789abcdef")})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		got  string
		want bool
	}{
		{"access token as access", s.AccessTokenSignature(ctx, "pst_at_key.sig"), true},
		{"refresh token as access", s.AccessTokenSignature(ctx, "pst_rt_key.sig"), false},
		{"garbage as access", s.AccessTokenSignature(ctx, "garbage"), false},
		{"refresh token as refresh", s.RefreshTokenSignature(ctx, "pst_rt_key.sig"), true},
		{"access token as refresh", s.RefreshTokenSignature(ctx, "pst_at_key.sig"), false},
		{"code as code", s.AuthorizeCodeSignature(ctx, "pst_ac_key.sig"), true},
		{"unprefixed code", s.AuthorizeCodeSignature(ctx, "key.sig"), false},
	} {
		if (tc.got != "") != tc.want {
			t.Errorf("%s: signature %q", tc.name, tc.got)
		}
	}
}

package identity

import (
	"testing"

	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/passhash/passhashtest"
)

func TestPasswordVerifier(t *testing.T) {
	var c passhashtest.CountingDerive
	v := NewPasswordVerifier(passhash.NewLimiter(0, c.Derive))

	const pw = "s3cret-passphrase"
	phc, err := passhash.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		phc   string
		pw    string
		known bool
		want  bool
	}{
		{"known right", phc, pw, true, true},
		{"known wrong", phc, "s3cret-passphrasE", true, false},
		{"known empty", phc, "", true, false},
		// An unknown user never passes, even if the caller hands over a
		// hash that would match.
		{"unknown", "", pw, false, false},
		{"unknown with matching hash", phc, pw, false, false},
		{"malformed", "$argon2id$v=19$m=65536", pw, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Count()
			if got := v.Verify(tc.phc, tc.pw, tc.known); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
			// Every path costs exactly one argon2 run with the default
			// parameters; that is what keeps user existence out of timing.
			if n := c.Count() - before; n != 1 {
				t.Errorf("argon2 ran %d times, want 1", n)
			}
			if want := [4]uint32{1, 64 * 1024, 2, 32}; c.Last() != want {
				t.Errorf("argon2 params (t, m, p, keyLen) = %v, want %v", c.Last(), want)
			}
		})
	}
	if err := passhash.ValidatePasswordHash(v.dummy.String()); err != nil {
		t.Errorf("dummy hash is not a valid hash: %v", err)
	}
	if NewPasswordVerifier(passhash.NewLimiter(0, nil)).dummy.String() == v.dummy.String() {
		t.Error("two verifiers share a dummy hash")
	}
}

func TestZeroPasswordVerifierRejects(t *testing.T) {
	phc := passhashtest.Cheap(t, "pw")
	var v PasswordVerifier
	if v.Verify(phc, "pw", true) {
		t.Error("zero PasswordVerifier accepted a password")
	}
	var nilVerifier *PasswordVerifier
	if nilVerifier.Verify(phc, "pw", true) {
		t.Error("nil PasswordVerifier accepted a password")
	}
}

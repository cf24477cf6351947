package identity

import (
	"context"

	"github.com/postern-auth/postern/passhash"
)

// PasswordVerifier checks user passwords without revealing through response
// time whether the username exists. Its derivations count against the
// process's one passhash.Limiter. Create with NewPasswordVerifier (a zero
// value rejects every password); safe for concurrent use.
type PasswordVerifier struct {
	// dummy has the parameters HashPassword uses and a key no password is
	// known to produce. Unknown users are checked against it so they cost
	// one argon2 run like everyone else. Users whose stored hash has other
	// parameters take a different time; keep user hashes on the defaults.
	dummy   passhash.Hash
	limiter *passhash.Limiter
}

// NewPasswordVerifier returns a verifier with its own dummy hash whose checks
// share limiter with every other argon2 check of the process.
func NewPasswordVerifier(limiter *passhash.Limiter) *PasswordVerifier {
	return &PasswordVerifier{dummy: passhash.Dummy(), limiter: limiter}
}

// Verify reports whether pw is the password for a user whose stored hash is
// phc. Pass known=false when the username does not exist (phc is then
// ignored): the check still runs argon2 once so the answer comes back in the
// same time, and is false. A malformed phc also yields false after a dummy
// run; catch it earlier with passhash.ValidatePasswordHash.
func (v *PasswordVerifier) Verify(phc string, pw string, known bool) bool {
	return v.VerifyContext(context.Background(), phc, pw, known)
}

// VerifyContext is Verify under ctx's trace; ctx does not cut the check
// short (a wait cut short would tell a timing apart).
func (v *PasswordVerifier) VerifyContext(ctx context.Context, phc string, pw string, known bool) bool {
	if v == nil || v.limiter == nil {
		return false // not from NewPasswordVerifier
	}
	h, usable := v.dummy, false
	if known {
		if parsed, err := passhash.Parse(phc); err == nil {
			h, usable = parsed, true
		}
	}
	// Not cancelled with ctx (only traced under it); waiting for a slot
	// is still better than letting a login burst allocate 64 MiB per
	// request.
	ok, _ := v.limiter.Match(context.WithoutCancel(ctx), h, []byte(pw))
	return ok && usable && pw != ""
}

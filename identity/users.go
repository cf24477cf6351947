package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/postern-auth/postern/passhash"
)

// User is a local account from configuration.
type User struct {
	Username     string
	PasswordHash string // argon2id PHC
	Password     string // development only: a plaintext from config
	Claims       map[string]string
}

// MaxUsernameLen bounds usernames (configuration refuses longer ones).
const MaxUsernameLen = 256

// maxPasswordLen bounds what is fed to argon2; no real password is longer.
const maxPasswordLen = 4096

// Errors Authenticate returns; callers branch on them.
var (
	ErrBadCredentials = errors.New("identity: invalid username or password")
)

// ThrottledError says login attempts for this username or address are
// paused; RetryAfter is how long until the next attempt is considered.
type ThrottledError struct {
	RetryAfter time.Duration
	// Busy: another sign-in for the same name or address is being checked
	// right now, rather than too many having failed.
	Busy bool
}

func (e *ThrottledError) Error() string {
	if e.Busy {
		return "identity: another sign-in for this account is being checked; retry in a moment"
	}
	return fmt.Sprintf("identity: too many failed logins; retry in %s", e.RetryAfter.Round(time.Second))
}

// Directory authenticates local users. One Directory serves the login form
// and the password grant, so both share the same brute-force counters.
type Directory struct {
	users        map[string]User
	fingerprints map[string]string
	verifier     *PasswordVerifier
	throttle     *Throttle
}

// NewDirectory indexes users by name; the throttle may be shared (and, with
// a ThrottleOptions.Store, its counters shared between processes), and the
// limiter is the process's one bound on argon2 checks.
func NewDirectory(users []User, throttle *Throttle, limiter *passhash.Limiter) *Directory {
	d := &Directory{users: make(map[string]User, len(users)), fingerprints: make(map[string]string, len(users)), verifier: NewPasswordVerifier(limiter), throttle: throttle}
	for _, u := range users {
		d.users[u.Username] = u
		// Computed once: introspection checks it on every token.
		d.fingerprints[u.Username] = fingerprint(u)
	}
	return d
}

// Fingerprint identifies a user's current credential without revealing it.
// Sessions and tokens carry it, so changing a user's password in the
// configuration ends what was obtained with the old one.
func (d *Directory) Fingerprint(username string) (string, bool) {
	fp, ok := d.fingerprints[username]
	return fp, ok
}

func fingerprint(u User) string {
	cred := u.PasswordHash
	if cred == "" {
		cred = "plain\x00" + u.Password
	}
	sum := sha256.Sum256([]byte("postern credential\x00" + cred))
	return hex.EncodeToString(sum[:8])
}

// Lookup returns a configured user.
func (d *Directory) Lookup(username string) (User, bool) {
	u, ok := d.users[username]
	return u, ok
}

// Authenticate checks a username and password from ip. Unknown users cost the
// same argon2 run as known ones, so timing does not reveal which names exist;
// the throttle is consulted first so a paused account costs nothing.
func (d *Directory) Authenticate(ctx context.Context, username, password, ip string) (User, error) {
	if len(username) > MaxUsernameLen || len(password) > maxPasswordLen {
		// No configured user has such a name; refusing early keeps
		// attacker-sized strings out of the throttle's counters.
		return User{}, ErrBadCredentials
	}
	keys := d.throttle.keys(username, ip)
	release, free := d.throttle.begin(keys)
	if !free {
		return User{}, &ThrottledError{RetryAfter: time.Second, Busy: true}
	}
	defer release()
	wait, storeOK := d.throttle.wait(ctx, keys...)
	if wait > 0 {
		return User{}, &ThrottledError{RetryAfter: wait}
	}
	u, known := d.users[username]
	var ok bool
	if known && u.Password != "" {
		// Development plaintext: compare digests so the time does not
		// depend on the configured password's length.
		a, b := sha256.Sum256([]byte(u.Password)), sha256.Sum256([]byte(password))
		ok = subtle.ConstantTimeCompare(a[:], b[:]) == 1 && password != ""
	} else {
		ok = d.verifier.VerifyContext(ctx, u.PasswordHash, password, known)
	}
	if !ok || !known {
		d.throttle.fail(ctx, storeOK, keys...)
		return User{}, ErrBadCredentials
	}
	d.throttle.succeed(ctx, storeOK, keys[0])
	return u, nil
}

// EndedSince lists the users of old whose sign-ins no longer stand in d:
// removed, or with another credential (a changed password). Their tokens
// are void; the revocation feed tells the caches so.
func (d *Directory) EndedSince(old *Directory) []string {
	var ended []string
	for name, fp := range old.fingerprints {
		if now, ok := d.fingerprints[name]; !ok || now != fp {
			ended = append(ended, name)
		}
	}
	slices.Sort(ended)
	return ended
}

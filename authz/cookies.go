package authz

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

const (
	sessionCookie = "postern_session"
	csrfCookie    = "postern_csrf"
	csrfField     = "csrf_token"
)

// loginSession is what the session cookie carries, encrypted and
// authenticated (AES-GCM): the browser can neither read nor forge it.
type loginSession struct {
	// SID names this session (16 random bytes, base64url) so that the
	// server can remember it was signed out: the store's revoked session
	// IDs outlive the cookie that the browser deleted, and a copy of it.
	SID      string            `json:"sid"`
	Subject  string            `json:"sub"`
	Username string            `json:"usr"`
	Claims   map[string]string `json:"clm,omitempty"`
	// CredFP fingerprints a local user's credential at sign-in: a changed
	// password ends the session.
	CredFP string `json:"cfp,omitempty"`
	// AuthTime is when the user signed in, in Unix nanoseconds: "sign out
	// everywhere" voids the sessions that started at or before an instant,
	// and a sign-in in the same second after it must survive.
	AuthTime int64 `json:"atn"`
	Expires  int64 `json:"exp"` // Unix seconds
	// AMR says how the user signed in (the ID token's amr): amrPassword
	// for the login form, amrSAML for a SAML identity provider.
	AMR string `json:"amr,omitempty"`
}

// Authentication methods (RFC 8176 where it has a name for one). A SAML
// sign-in is "saml": the IdP authenticated the user and Postern does not
// know how, so it claims no method of its own.
const (
	amrPassword = "pwd"
	amrSAML     = "saml"
)

func (s *loginSession) methods() []string {
	if s.AMR == "" {
		return nil
	}
	return []string{s.AMR}
}

// newSessionID returns 16 random bytes, base64url without padding.
func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

type cookieJar struct {
	aead    cipher.AEAD
	csrfKey []byte
	secure  bool
	ttl     time.Duration
	now     func() time.Time
}

func newCookieJar(key []byte, secure bool, ttl time.Duration, now func() time.Time) (*cookieJar, error) {
	if len(key) < 64 {
		return nil, errors.New("cookie key must be 64 bytes")
	}
	block, err := aes.NewCipher(key[:32])
	if err != nil {
		return nil, fmt.Errorf("cookie cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cookie cipher: %w", err)
	}
	return &cookieJar{aead: aead, csrfKey: key[32:64], secure: secure, ttl: ttl, now: now}, nil
}

func (j *cookieJar) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, j.aead.NonceSize(), j.aead.NonceSize()+len(plain)+j.aead.Overhead())
	_, _ = rand.Read(nonce)
	// The cookie name is authenticated data: a value cannot be replayed
	// under another cookie's name.
	return base64.RawURLEncoding.EncodeToString(j.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (j *cookieJar) open(name, value string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < j.aead.NonceSize() {
		return errors.New("malformed cookie")
	}
	n := j.aead.NonceSize()
	plain, err := j.aead.Open(nil, raw[:n], raw[n:], []byte(name))
	if err != nil {
		return errors.New("cookie does not authenticate")
	}
	return json.Unmarshal(plain, v)
}

// names: over https the cookies carry the __Host- prefix, which browsers
// accept only from this exact host, Secure and with Path=/, so a sibling
// subdomain or a plain-http page cannot plant one (cookie tossing).
func (j *cookieJar) sessionName() string {
	if j.secure {
		return "__Host-" + sessionCookie
	}
	return sessionCookie
}

func (j *cookieJar) csrfName() string {
	if j.secure {
		return "__Host-" + csrfCookie
	}
	return csrfCookie
}

func (j *cookieJar) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode}
}

// session returns the user the cookie names until it expires, or nil. It
// knows nothing of sign-outs the server remembers: use Server.session.
func (j *cookieJar) session(r *http.Request) *loginSession {
	c, err := r.Cookie(j.sessionName())
	if err != nil {
		return nil
	}
	var s loginSession
	if err := j.open(sessionCookie, c.Value, &s); err != nil {
		return nil
	}
	if j.now().Unix() >= s.Expires {
		return nil
	}
	return &s
}

// startSession signs s in under a new session ID.
func (j *cookieJar) startSession(w http.ResponseWriter, s loginSession) error {
	now := j.now()
	s.SID = newSessionID()
	s.AuthTime = now.UnixNano()
	s.Expires = now.Add(j.ttl).Unix()
	v, err := j.seal(sessionCookie, s)
	if err != nil {
		return err
	}
	http.SetCookie(w, j.cookie(j.sessionName(), v, int(j.ttl/time.Second)))
	// A new session gets a new CSRF seed: a seed known from before the
	// sign-in (planted, or read over a shared machine) is worth nothing.
	j.newCSRFSeed(w)
	return nil
}

func (j *cookieJar) endSession(w http.ResponseWriter) {
	http.SetCookie(w, j.cookie(j.sessionName(), "", -1))
}

func (j *cookieJar) newCSRFSeed(w http.ResponseWriter) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	seed := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, j.cookie(j.csrfName(), seed, 0))
	return seed
}

// csrfToken returns the token for this browser's forms, setting the CSRF
// cookie first if the browser has none. The token is an HMAC of the cookie
// and of the signed-in session (signed double-submit, bound to the
// session): a cross-site form cannot read the cookie, and a token obtained
// in one session does not work in another.
func (j *cookieJar) csrfToken(w http.ResponseWriter, r *http.Request) string {
	seed := ""
	if c, err := r.Cookie(j.csrfName()); err == nil && len(c.Value) >= 32 {
		seed = c.Value
	} else {
		seed = j.newCSRFSeed(w)
	}
	return j.csrfFor(seed, j.session(r))
}

func (j *cookieJar) csrfFor(seed string, s *loginSession) string {
	m := hmac.New(sha256.New, j.csrfKey)
	m.Write([]byte(seed))
	if s != nil {
		fmt.Fprintf(m, "\x00%s\x00%d", s.Subject, s.AuthTime)
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF verifies the form's token against the cookie and the session
// in constant time.
func (j *cookieJar) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(j.csrfName())
	if err != nil || len(c.Value) < 32 {
		return false
	}
	got := r.PostForm.Get(csrfField)
	return got != "" && hmac.Equal([]byte(got), []byte(j.csrfFor(c.Value, j.session(r))))
}

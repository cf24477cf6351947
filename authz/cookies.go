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
	Subject  string            `json:"sub"`
	Username string            `json:"usr"`
	Claims   map[string]string `json:"clm,omitempty"`
	// CredFP fingerprints a local user's credential at sign-in: a changed
	// password ends the session.
	CredFP   string `json:"cfp,omitempty"`
	AuthTime int64  `json:"at"`
	Expires  int64  `json:"exp"`
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

func (j *cookieJar) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode}
}

// session returns the signed-in user, or nil.
func (j *cookieJar) session(r *http.Request) *loginSession {
	c, err := r.Cookie(sessionCookie)
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

func (j *cookieJar) startSession(w http.ResponseWriter, s loginSession) error {
	now := j.now()
	s.AuthTime = now.Unix()
	s.Expires = now.Add(j.ttl).Unix()
	v, err := j.seal(sessionCookie, s)
	if err != nil {
		return err
	}
	http.SetCookie(w, j.cookie(sessionCookie, v, int(j.ttl/time.Second)))
	return nil
}

func (j *cookieJar) endSession(w http.ResponseWriter) {
	http.SetCookie(w, j.cookie(sessionCookie, "", -1))
}

// csrfToken returns the token for this browser's forms, setting the CSRF
// cookie first if the browser has none. The token is an HMAC of the cookie
// (signed double-submit): a cross-site form cannot read the cookie, and a
// planted cookie is useless without the server's key.
func (j *cookieJar) csrfToken(w http.ResponseWriter, r *http.Request) string {
	seed := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		seed = c.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		seed = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, j.cookie(csrfCookie, seed, 0))
	}
	return j.csrfFor(seed)
}

func (j *cookieJar) csrfFor(seed string) string {
	m := hmac.New(sha256.New, j.csrfKey)
	m.Write([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF verifies the form's token against the cookie in constant time.
func (j *cookieJar) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	got := r.PostForm.Get(csrfField)
	return got != "" && hmac.Equal([]byte(got), []byte(j.csrfFor(c.Value)))
}

package authz

import (
	"encoding/json"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/confjson"
)

// The server file's tokens and login blocks belong here: the server
// issues the tokens and keeps the login sessions they configure.

// TokensFileConfig is the tokens block as written in the server's file.
type TokensFileConfig struct {
	AccessTokenFormat      string            `json:"access_token_format"`
	AccessTokenTTL         confjson.Duration `json:"access_token_ttl"`
	ImplicitAccessTokenTTL confjson.Duration `json:"implicit_access_token_ttl"`
	RefreshTokenTTL        confjson.Duration `json:"refresh_token_ttl"`
	AuthorizationCodeTTL   confjson.Duration `json:"authorization_code_ttl"`
	// A pointer: "0s" (strict one-time refresh) differs from absent.
	RefreshRetryWindow *confjson.Duration `json:"refresh_retry_window"`
}

// LoginFileConfig is the login block as written in the server's file.
type LoginFileConfig struct {
	SessionTTL confjson.Duration `json:"session_ttl"`
}

// Defaults (DESIGN.md).
const (
	DefaultAccessTTL   = time.Hour
	DefaultImplicitTTL = 30 * time.Minute
	DefaultRefreshTTL  = 720 * time.Hour
	DefaultCodeTTL     = 10 * time.Minute
	DefaultSessionTTL  = 8 * time.Hour
	// DefaultRefreshRetryWindow covers a response lost on a flaky network
	// and two tabs refreshing at once; a retry comes within seconds.
	DefaultRefreshRetryWindow = 30 * time.Second
	maxImplicitTTL            = 24 * time.Hour
	maxCodeTTL                = time.Hour
)

// ParseTokensConfig reads the tokens block raw (absent: all defaults) at
// path into the access-token format and the lifetimes.
func ParseTokensConfig(path string, raw json.RawMessage) (format string, lt clients.Lifetimes, err error) {
	var t TokensFileConfig
	if len(raw) > 0 {
		if err := confjson.Decode(raw, &t, path); err != nil {
			return "", lt, err
		}
	}
	switch t.AccessTokenFormat {
	case "", FormatOpaque:
		format = FormatOpaque
	case FormatJWT:
		format = FormatJWT
	default:
		return "", lt, confjson.Errorf(path+".access_token_format", "unknown format %q (want \"opaque\" or \"jwt\")", t.AccessTokenFormat)
	}
	lt, err = t.lifetimes(path)
	return format, lt, err
}

func (t TokensFileConfig) lifetimes(path string) (lt clients.Lifetimes, err error) {
	ttl := func(name string, d confjson.Duration, def time.Duration) (time.Duration, error) {
		switch {
		case d.Duration == 0:
			return def, nil
		case d.Duration < time.Second:
			return 0, confjson.Errorf(path+"."+name, "must be at least 1s, got %s", d.Duration)
		}
		return d.Duration, nil
	}
	if lt.AccessToken, err = ttl("access_token_ttl", t.AccessTokenTTL, DefaultAccessTTL); err != nil {
		return lt, err
	}
	if lt.ImplicitAccessToken, err = ttl("implicit_access_token_ttl", t.ImplicitAccessTokenTTL, DefaultImplicitTTL); err != nil {
		return lt, err
	}
	if lt.ImplicitAccessToken > maxImplicitTTL {
		return lt, confjson.Errorf(path+".implicit_access_token_ttl", "%s exceeds the 24h limit for implicit tokens", lt.ImplicitAccessToken)
	}
	if lt.RefreshToken, err = ttl("refresh_token_ttl", t.RefreshTokenTTL, DefaultRefreshTTL); err != nil {
		return lt, err
	}
	if lt.AuthorizationCode, err = ttl("authorization_code_ttl", t.AuthorizationCodeTTL, DefaultCodeTTL); err != nil {
		return lt, err
	}
	if lt.AuthorizationCode > maxCodeTTL {
		return lt, confjson.Errorf(path+".authorization_code_ttl", "%s is too long; codes must be short-lived (at most 1h)", lt.AuthorizationCode)
	}
	// The default never outlasts half an access token: a retry must hand
	// back a token that is still good.
	lt.RefreshRetryWindow = min(DefaultRefreshRetryWindow, lt.AccessToken/2)
	if t.RefreshRetryWindow != nil {
		lt.RefreshRetryWindow = t.RefreshRetryWindow.Duration
		if err := clients.CheckRefreshRetryWindow(lt.RefreshRetryWindow, lt.AccessToken); err != nil {
			return lt, confjson.Errorf(path+".refresh_retry_window", "%v", err)
		}
	}
	return lt, nil
}

// ParseLoginConfig reads the login block raw (absent: defaults) at path
// into the lifetime of a login session.
func ParseLoginConfig(path string, raw json.RawMessage) (sessionTTL time.Duration, err error) {
	var lc LoginFileConfig
	if len(raw) > 0 {
		if err := confjson.Decode(raw, &lc, path); err != nil {
			return 0, err
		}
	}
	switch d := lc.SessionTTL.Duration; {
	case d == 0:
		return DefaultSessionTTL, nil
	case d < time.Minute || d > 30*24*time.Hour:
		return 0, confjson.Errorf(path+".session_ttl", "%s is outside 1m to 720h", d)
	default:
		return d, nil
	}
}

package authz

import (
	"encoding/json"
	"strings"
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

// RegistrationFileConfig is the registration block: RFC 7591 dynamic
// client registration, on only with an initial access token.
type RegistrationFileConfig struct {
	InitialAccessTokenHash string `json:"initial_access_token_hash"`
}

// ParseRegistrationConfig reads the registration block (absent:
// registration off) into the hash initial access tokens are checked with.
func ParseRegistrationConfig(path string, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var rc RegistrationFileConfig
	if err := confjson.Decode(raw, &rc, path); err != nil {
		return nil, err
	}
	if rc.InitialAccessTokenHash == "" {
		return nil, confjson.Errorf(path+".initial_access_token_hash", "is required (make one with `postern clients hash`); remove the block to turn registration off")
	}
	if err := clients.ValidateSecretHash(rc.InitialAccessTokenHash); err != nil {
		return nil, confjson.Errorf(path+".initial_access_token_hash", "%v", err)
	}
	return []byte(rc.InitialAccessTokenHash), nil
}

// PortalFileConfig is the portal block: who may use the developer portal.
type PortalFileConfig struct {
	// Developers are usernames, or ["*"] for every signed-in user.
	Developers          []string          `json:"developers"`
	MaxAppsPerDeveloper int               `json:"max_apps_per_developer"`
	SecretRotationGrace confjson.Duration `json:"secret_rotation_grace"`
}

// Portal is the validated portal block; the zero value keeps the portal off.
type Portal struct {
	On bool
	// AllUsers lets every signed-in user in; otherwise only Developers.
	AllUsers            bool
	Developers          map[string]bool
	MaxAppsPerDeveloper int
	// SecretRotationGrace is how long a rotated-out secret keeps working.
	SecretRotationGrace time.Duration
}

// Portal defaults and bounds.
const (
	DefaultMaxAppsPerDeveloper = 10
	maxAppsPerDeveloperLimit   = 1000
	DefaultSecretRotationGrace = 24 * time.Hour
	maxSecretRotationGrace     = 30 * 24 * time.Hour
)

// ParsePortalConfig reads the portal block (absent: portal off).
func ParsePortalConfig(path string, raw json.RawMessage) (Portal, error) {
	if len(raw) == 0 {
		return Portal{}, nil
	}
	var pc PortalFileConfig
	if err := confjson.Decode(raw, &pc, path); err != nil {
		return Portal{}, err
	}
	p := Portal{On: true, Developers: map[string]bool{}, MaxAppsPerDeveloper: pc.MaxAppsPerDeveloper, SecretRotationGrace: pc.SecretRotationGrace.Duration}
	if len(pc.Developers) == 0 {
		return Portal{}, confjson.Errorf(path+".developers", "is required: usernames, or [\"*\"] for every signed-in user")
	}
	for i, d := range pc.Developers {
		at := confjson.Index(path+".developers", i)
		switch {
		case d == "*" && len(pc.Developers) > 1:
			return Portal{}, confjson.Errorf(at, "\"*\" (every signed-in user) stands alone")
		case d == "*":
			p.AllUsers = true
		case d == "" || strings.TrimSpace(d) != d:
			return Portal{}, confjson.Errorf(at, "%q is not a username", d)
		case p.Developers[d]:
			return Portal{}, confjson.Errorf(at, "%q listed twice", d)
		default:
			p.Developers[d] = true
		}
	}
	switch n := p.MaxAppsPerDeveloper; {
	case n == 0:
		p.MaxAppsPerDeveloper = DefaultMaxAppsPerDeveloper
	case n < 0 || n > maxAppsPerDeveloperLimit:
		return Portal{}, confjson.Errorf(path+".max_apps_per_developer", "%d is outside 1 to %d", n, maxAppsPerDeveloperLimit)
	}
	switch g := p.SecretRotationGrace; {
	case g == 0:
		p.SecretRotationGrace = DefaultSecretRotationGrace
	case g < time.Second || g > maxSecretRotationGrace:
		return Portal{}, confjson.Errorf(path+".secret_rotation_grace", "%s is outside 1s to 720h", g)
	}
	return p, nil
}

package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/netedge"
	"github.com/postern-auth/postern/passhash"
)

// fileConfig is the server's JSON configuration as written in git. Field
// names are the external contract (DESIGN.md); client fields use RFC 7591.
type fileConfig struct {
	Issuer        string            `json:"issuer"`
	Addr          string            `json:"addr"`
	DataDir       string            `json:"data_dir"`
	Store         string            `json:"store"`  // postgres:// DSN; empty means bbolt in data_dir
	Tokens        json.RawMessage   `json:"tokens"` // tokensConfig, decoded under its own path
	Keys          json.RawMessage   `json:"keys"`   // keysConfig, likewise
	Login         json.RawMessage   `json:"login"`  // loginConfig, likewise
	Clients       []json.RawMessage `json:"clients"`
	Users         []json.RawMessage `json:"users"`
	SAMLProviders []json.RawMessage `json:"saml_providers"`
	// TrustedProxies are load balancers whose forwarding headers name the
	// real client (for the audit log and the login throttle).
	TrustedProxies []string `json:"trusted_proxies"`
	// ForwardedHeader: "x-forwarded" (default) or "forwarded", the one
	// header family those proxies overwrite.
	ForwardedHeader string `json:"forwarded_header"`
	// TLS serves HTTPS directly, without a terminating proxy.
	TLS json.RawMessage `json:"tls"`
}

type tokensConfig struct {
	AccessTokenFormat      string   `json:"access_token_format"`
	AccessTokenTTL         duration `json:"access_token_ttl"`
	ImplicitAccessTokenTTL duration `json:"implicit_access_token_ttl"`
	RefreshTokenTTL        duration `json:"refresh_token_ttl"`
	AuthorizationCodeTTL   duration `json:"authorization_code_ttl"`
}

type keysConfig struct {
	Algorithm string   `json:"algorithm"`
	Overlap   duration `json:"rotation_overlap"`
	Reload    duration `json:"reload_interval"` // shared stores only
	// RotateAfter is the age at which the server replaces its signing key.
	RotateAfter duration `json:"rotate_after"`
}

type loginConfig struct {
	SessionTTL duration `json:"session_ttl"`
}

type clientConfig struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	ClientSecretHash        string   `json:"client_secret_hash"`
	ClientSecret            string   `json:"client_secret"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	RedirectURIs            []string `json:"redirect_uris"`
	Scope                   string   `json:"scope"`
	Audience                []string `json:"audience"`
	Trusted                 bool     `json:"trusted"`
	ResourceServer          bool     `json:"resource_server"`
	// private_key_jwt (RFC 7523): the public keys, inline or by URL.
	JWKS                        json.RawMessage `json:"jwks"`
	JWKSURI                     string          `json:"jwks_uri"`
	TokenEndpointAuthSigningAlg string          `json:"token_endpoint_auth_signing_alg"`
}

type userConfig struct {
	Username     string            `json:"username"`
	PasswordHash string            `json:"password_hash"`
	Password     string            `json:"password"`
	Claims       map[string]string `json:"claims"`
}

// duration reads Go duration strings ("1h", "30m").
type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`expected a duration string such as "1h" or "30m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	d.Duration = v
	return nil
}

// Config is the validated server configuration.
type Config struct {
	Issuer       string
	Addr         string
	DataDir      string
	Store        string // PostgreSQL DSN shared by replicas, "" for bbolt in DataDir; may hold a password: never log it
	Format       string
	Lifetimes    clients.Lifetimes
	KeyAlgorithm string
	KeyOverlap   time.Duration
	KeyReload    time.Duration // how often a replica re-reads a shared store's keys; 0 for the default
	KeyRotate    time.Duration // age at which the active signing key is replaced
	Clients      []*clients.Client
	Users        []identity.User
	SessionTTL   time.Duration
	// TrustedProxies, ForwardedHeader: see fileConfig.
	TrustedProxies  []netip.Prefix
	ForwardedHeader string
	// TLS: nil serves plain HTTP; TLSFiles names what it was loaded from.
	TLS      *tls.Config
	TLSFiles [2]string
	// SAMLProviders are the identity providers of the login page, metadata
	// files already read (see SAMLProvider).
	SAMLProviders []SAMLProvider
	// Warnings are logged at start: development shortcuts that work but must
	// not reach production.
	Warnings []string
}

// configError names the field at fault: "config: clients[1].grant_types: ...".
type configError struct {
	Path string
	Msg  string
}

func (e *configError) Error() string {
	if e.Path == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Path + ": " + e.Msg
}

func errAt(path, format string, args ...any) error {
	return &configError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

const maxConfigBytes = 16 << 20

// readConfigFile reads a configuration file of bounded size.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(raw) > maxConfigBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, maxConfigBytes)
	}
	return raw, nil
}

// loadConfig reads, expands and validates a configuration file.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	raw, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(raw, getenv)
	if err != nil {
		return nil, err
	}
	if err := readSAMLMetadata(cfg.SAMLProviders, filepath.Dir(path)); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseConfig(raw []byte, getenv func(string) string) (*Config, error) {
	expanded, err := expandEnv(raw, getenv)
	if err != nil {
		return nil, err
	}
	var fc fileConfig
	if err := strictDecode(expanded, &fc, ""); err != nil {
		return nil, err
	}
	return fc.validate()
}

// strictDecode refuses unknown fields, trailing data and type mismatches,
// naming the offending field under prefix.
func strictDecode(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, prefix)
	}
	if dec.More() {
		return errAt(prefix, "unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errAt(prefix, "unexpected data after the JSON value")
	}
	return nil
}

func joinPath(prefix, field string) string {
	if prefix == "" {
		return field
	}
	if field == "" {
		return prefix
	}
	return prefix + "." + field
}

func decodeError(err error, prefix string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errAt(prefix, "invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return errAt(joinPath(prefix, typ.Field), "expected %s, got %s", typ.Type.String(), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errAt(prefix, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errAt(prefix, "unexpected end of JSON")
	}
	// Errors from UnmarshalJSON methods (durations) carry no field name in
	// encoding/json v1; the message itself names what was expected.
	return errAt(prefix, "%v", err)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in every string value, so secrets stay out of
// git. It works on the parsed tree, so a value cannot inject JSON.
func expandEnv(raw []byte, getenv func(string) string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, decodeError(err, "")
	}
	// Token rather than More: More reports false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errAt("", "unexpected data after the JSON value")
	}
	out, err := expandValue(tree, "", getenv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func expandValue(v any, path string, getenv func(string) string) (any, error) {
	switch t := v.(type) {
	case string:
		var missing, forbidden string
		s := envRef.ReplaceAllStringFunc(t, func(m string) string {
			name := m[2 : len(m)-1]
			if name == "POSTERN_SECRET" {
				// The system secret keys every token and key; no
				// configuration value has a reason to contain it, and a
				// display name would publish it.
				if forbidden == "" {
					forbidden = name
				}
				return ""
			}
			val := getenv(name)
			if val == "" && missing == "" {
				missing = name
			}
			return val
		})
		if forbidden != "" {
			return nil, errAt(path, "${%s} may not appear in the configuration", forbidden)
		}
		if missing != "" {
			return nil, errAt(path, "environment variable %s is not set", missing)
		}
		return s, nil
	case map[string]any:
		for k, e := range t {
			x, err := expandValue(e, joinPath(path, k), getenv)
			if err != nil {
				return nil, err
			}
			t[k] = x
		}
	case []any:
		for i, e := range t {
			x, err := expandValue(e, fmt.Sprintf("%s[%d]", path, i), getenv)
			if err != nil {
				return nil, err
			}
			t[i] = x
		}
	}
	return v, nil
}

// Defaults (DESIGN.md).
const (
	defaultAddr         = "127.0.0.1:4444"
	defaultDataDir      = "postern-data"
	defaultAccessTTL    = time.Hour
	defaultImplicitTTL  = 30 * time.Minute
	maxImplicitTTL      = 24 * time.Hour
	defaultRefreshTTL   = 720 * time.Hour
	defaultCodeTTL      = 10 * time.Minute
	defaultKeyOverlap   = 24 * time.Hour
	defaultKeyAlgorithm = "ES256"
	defaultSessionTTL   = 8 * time.Hour
	defaultKeyRotate    = 90 * 24 * time.Hour
)

func (fc *fileConfig) validate() (*Config, error) {
	c := &Config{Addr: fc.Addr, DataDir: fc.DataDir}
	if c.Addr == "" {
		c.Addr = defaultAddr
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, errAt("addr", "expected host:port, got %q", c.Addr)
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	}
	if fc.Store != "" {
		if err := validateStore(fc.Store); err != nil {
			return nil, errAt("store", "%v", err)
		}
		c.Store = fc.Store
	}
	if fc.Issuer != "" {
		iss, err := validateIssuer(fc.Issuer)
		if err != nil {
			return nil, errAt("issuer", "%v", err)
		}
		c.Issuer = iss
	}
	// Decoded here rather than with the file so that an unknown field or a
	// bad duration is reported under "tokens" or "keys".
	var tc tokensConfig
	var kc keysConfig
	if len(fc.Tokens) > 0 {
		if err := strictDecode(fc.Tokens, &tc, "tokens"); err != nil {
			return nil, err
		}
	}
	if len(fc.Keys) > 0 {
		if err := strictDecode(fc.Keys, &kc, "keys"); err != nil {
			return nil, err
		}
	}
	if err := tc.apply(c); err != nil {
		return nil, err
	}
	switch kc.Algorithm {
	case "":
		c.KeyAlgorithm = defaultKeyAlgorithm
	case "ES256", "RS256":
		c.KeyAlgorithm = kc.Algorithm
	default:
		return nil, errAt("keys.algorithm", "unknown algorithm %q (want ES256 or RS256)", kc.Algorithm)
	}
	if d := kc.Reload.Duration; d != 0 && d < time.Second {
		return nil, errAt("keys.reload_interval", "must be at least 1s, got %s", d)
	}
	c.KeyReload = kc.Reload.Duration // zero: serve's default
	switch d := kc.RotateAfter.Duration; {
	case d == 0:
		c.KeyRotate = defaultKeyRotate
	case d < 24*time.Hour:
		return nil, errAt("keys.rotate_after", "%s is shorter than 24h", d)
	default:
		c.KeyRotate = d
	}
	c.KeyOverlap = kc.Overlap.Duration
	if c.KeyOverlap == 0 {
		c.KeyOverlap = defaultKeyOverlap
	} else if c.KeyOverlap < 0 {
		return nil, errAt("keys.rotation_overlap", "must be positive")
	}
	// A rotated-out key must stay published while tokens it signed live,
	// implicit-grant tokens included.
	if c.KeyOverlap < c.Lifetimes.AccessToken {
		return nil, errAt("keys.rotation_overlap", "%s is shorter than access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.AccessToken)
	}
	if c.KeyOverlap < c.Lifetimes.ImplicitAccessToken {
		return nil, errAt("keys.rotation_overlap", "%s is shorter than implicit_access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.ImplicitAccessToken)
	}

	var lc loginConfig
	if len(fc.Login) > 0 {
		if err := strictDecode(fc.Login, &lc, "login"); err != nil {
			return nil, err
		}
	}
	switch d := lc.SessionTTL.Duration; {
	case d == 0:
		c.SessionTTL = defaultSessionTTL
	case d < time.Minute || d > 30*24*time.Hour:
		return nil, errAt("login.session_ttl", "%s is outside 1m to 720h", d)
	default:
		c.SessionTTL = d
	}

	if len(fc.TLS) > 0 {
		var tf gwTLSFile
		if err := strictDecode(fc.TLS, &tf, "tls"); err != nil {
			return nil, err
		}
		if tf.CAFile != "" {
			return nil, errAt("tls.ca_file", "client certificates are not supported; clients authenticate at the token endpoint")
		}
		cert, err := loadKeyPair("tls", tf)
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.TLSFiles = [2]string{tf.CertFile, tf.KeyFile}
		if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") {
			return nil, errAt("issuer", "%q is plain http while tls is set; clients would be told the wrong scheme", c.Issuer)
		}
	}
	switch fc.ForwardedHeader {
	case "", authz.HeaderXForwardedFor:
		c.ForwardedHeader = authz.HeaderXForwardedFor
	case authz.HeaderForwarded:
		c.ForwardedHeader = authz.HeaderForwarded
	default:
		return nil, errAt("forwarded_header", "expected %q (X-Forwarded-For) or %q (RFC 7239), got %q", authz.HeaderXForwardedFor, authz.HeaderForwarded, fc.ForwardedHeader)
	}
	for i, p := range fc.TrustedProxies {
		prefix, err := netedge.ParsePrefix(p)
		if err != nil {
			return nil, errAt(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}

	seen := map[string]int{}
	for i, raw := range fc.Clients {
		path := fmt.Sprintf("clients[%d]", i)
		var cc clientConfig
		if err := strictDecode(raw, &cc, path); err != nil {
			return nil, err
		}
		client, warn, err := cc.validate(path, c.Lifetimes)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[client.ID]; dup {
			return nil, errAt(path+".client_id", "%q is already used by clients[%d]", client.ID, j)
		}
		seen[client.ID] = i
		c.Clients = append(c.Clients, client)
		c.Warnings = append(c.Warnings, warn...)
	}
	users := map[string]int{}
	for i, raw := range fc.Users {
		path := fmt.Sprintf("users[%d]", i)
		var uc userConfig
		if err := strictDecode(raw, &uc, path); err != nil {
			return nil, err
		}
		u, warn, err := uc.validate(path)
		if err != nil {
			return nil, err
		}
		if j, dup := users[u.Username]; dup {
			return nil, errAt(path+".username", "%q is already used by users[%d]", u.Username, j)
		}
		if j, clash := seen[u.Username]; clash {
			// A JWT for a client-credentials token carries the client ID as
			// its subject (RFC 9068 §2.2); a user of the same name would be
			// indistinguishable from that machine.
			return nil, errAt(path+".username", "%q is also the client_id of clients[%d]; subjects of users and machines must differ", u.Username, j)
		}
		users[u.Username] = i
		c.Users = append(c.Users, u)
		c.Warnings = append(c.Warnings, warn...)
	}
	for i, raw := range fc.SAMLProviders {
		path := fmt.Sprintf("saml_providers[%d]", i)
		var sc samlProviderConfig
		if err := strictDecode(raw, &sc, path); err != nil {
			return nil, err
		}
		p, warn, err := sc.validate(path)
		if err != nil {
			return nil, err
		}
		c.SAMLProviders = append(c.SAMLProviders, p)
		c.Warnings = append(c.Warnings, warn...)
	}
	if err := checkSAMLProviders(c.SAMLProviders); err != nil {
		return nil, err
	}
	return c, nil
}

// validateStore accepts a PostgreSQL URL. Its messages never repeat the
// value: it may carry a password.
func validateStore(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("expected a postgres:// or postgresql:// URL (value not shown: it may hold a password)")
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("the postgres URL names no host")
	}
	return nil
}

// validateKeys checks a private_key_jwt client's key registration: exactly
// one of jwks (public keys only) and jwks_uri, and a supported algorithm.
func (cc clientConfig) validateKeys(path string, c *clients.Client) error {
	switch {
	case len(cc.JWKS) > 0 && cc.JWKSURI != "":
		return errAt(path, "set jwks or jwks_uri, not both")
	case len(cc.JWKS) > 0:
		set, err := clients.ParseClientJWKS(cc.JWKS)
		if err != nil {
			return errAt(path+".jwks", "%v", err)
		}
		c.JWKS = set
	case cc.JWKSURI != "":
		u, err := url.Parse(cc.JWKSURI)
		loopback := err == nil && u.Scheme == "http" && (u.Hostname() == "localhost" || net.ParseIP(u.Hostname()).IsLoopback())
		if err != nil || (u.Scheme != "https" && !loopback) || u.Host == "" {
			return errAt(path+".jwks_uri", "%q must be an https URL (plain http only on loopback)", cc.JWKSURI)
		}
		c.JWKSURI = cc.JWKSURI
	default:
		return errAt(path, "a private_key_jwt client needs jwks (its public keys) or jwks_uri")
	}
	c.AuthSigningAlg = cc.TokenEndpointAuthSigningAlg
	if c.AuthSigningAlg == "" {
		c.AuthSigningAlg = "RS256" // RFC 7591 / OpenID Connect registration default
	}
	if !slices.Contains(clients.ClientAssertionAlgs, c.AuthSigningAlg) {
		return errAt(path+".token_endpoint_auth_signing_alg", "unsupported algorithm %q (want one of %s)", c.AuthSigningAlg, strings.Join(clients.ClientAssertionAlgs, ", "))
	}
	return nil
}

func validateIssuer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("expected an absolute http(s) URL, got %q", s)
	}
	// ContainsAny also catches a bare "?" or "#", which url.Parse records as
	// empty RawQuery and Fragment.
	if strings.ContainsAny(s, "?#") || u.User != nil {
		return "", fmt.Errorf("must not contain a query, fragment or user info (RFC 8414 §2)")
	}
	return strings.TrimSuffix(s, "/"), nil
}

func (t tokensConfig) apply(c *Config) error {
	switch t.AccessTokenFormat {
	case "", authz.FormatOpaque:
		c.Format = authz.FormatOpaque
	case authz.FormatJWT:
		c.Format = authz.FormatJWT
	default:
		return errAt("tokens.access_token_format", "unknown format %q (want \"opaque\" or \"jwt\")", t.AccessTokenFormat)
	}
	ttl := func(name string, d duration, def time.Duration) (time.Duration, error) {
		switch {
		case d.Duration == 0:
			return def, nil
		case d.Duration < time.Second:
			return 0, errAt("tokens."+name, "must be at least 1s, got %s", d.Duration)
		}
		return d.Duration, nil
	}
	var err error
	if c.Lifetimes.AccessToken, err = ttl("access_token_ttl", t.AccessTokenTTL, defaultAccessTTL); err != nil {
		return err
	}
	if c.Lifetimes.ImplicitAccessToken, err = ttl("implicit_access_token_ttl", t.ImplicitAccessTokenTTL, defaultImplicitTTL); err != nil {
		return err
	}
	if c.Lifetimes.ImplicitAccessToken > maxImplicitTTL {
		return errAt("tokens.implicit_access_token_ttl", "%s exceeds the 24h limit for implicit tokens", c.Lifetimes.ImplicitAccessToken)
	}
	if c.Lifetimes.RefreshToken, err = ttl("refresh_token_ttl", t.RefreshTokenTTL, defaultRefreshTTL); err != nil {
		return err
	}
	if c.Lifetimes.AuthorizationCode, err = ttl("authorization_code_ttl", t.AuthorizationCodeTTL, defaultCodeTTL); err != nil {
		return err
	}
	if c.Lifetimes.AuthorizationCode > time.Hour {
		return errAt("tokens.authorization_code_ttl", "%s is too long; codes must be short-lived (at most 1h)", c.Lifetimes.AuthorizationCode)
	}
	return nil
}

var (
	knownGrants = map[string]bool{
		clients.GrantAuthorizationCode: true, clients.GrantImplicit: true, clients.GrantPassword: true,
		clients.GrantClientCredentials: true, clients.GrantRefreshToken: true,
	}
	// RFC 6749 §3.3 scope-token characters.
	scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	// Client IDs appear in URLs, logs and HTTP Basic; keep them unambiguous.
	clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
)

func (cc clientConfig) validate(path string, lt clients.Lifetimes) (*clients.Client, []string, error) {
	var warnings []string
	if cc.ClientID == "" {
		return nil, nil, errAt(path+".client_id", "is required")
	}
	if !clientIDPattern.MatchString(cc.ClientID) {
		return nil, nil, errAt(path+".client_id", "%q must be 1-128 characters of A-Z a-z 0-9 . _ ~ -", cc.ClientID)
	}
	c := &clients.Client{
		ID:                      cc.ClientID,
		Name:                    cc.ClientName,
		TokenEndpointAuthMethod: cc.TokenEndpointAuthMethod,
		Trusted:                 cc.Trusted,
		ResourceServer:          cc.ResourceServer,
		Audience:                cc.Audience,
		Lifetimes:               lt,
	}
	switch cc.TokenEndpointAuthMethod {
	case "":
		c.TokenEndpointAuthMethod = clients.AuthSecretBasic
	case clients.AuthSecretBasic, clients.AuthSecretPost, clients.AuthNone:
	case clients.AuthPrivateKeyJWT:
		if err := cc.validateKeys(path, c); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errAt(path+".token_endpoint_auth_method", "unknown method %q (want client_secret_basic, client_secret_post, private_key_jwt or none)", cc.TokenEndpointAuthMethod)
	}
	if c.TokenEndpointAuthMethod != clients.AuthPrivateKeyJWT && (len(cc.JWKS) > 0 || cc.JWKSURI != "" || cc.TokenEndpointAuthSigningAlg != "") {
		return nil, nil, errAt(path, "jwks, jwks_uri and token_endpoint_auth_signing_alg belong to token_endpoint_auth_method \"private_key_jwt\"")
	}
	public := c.TokenEndpointAuthMethod == clients.AuthNone
	keyAuth := c.TokenEndpointAuthMethod == clients.AuthPrivateKeyJWT
	switch {
	case keyAuth && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, errAt(path, "a private_key_jwt client authenticates with its key and must not have a secret")
	case keyAuth:
	case public && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, errAt(path, "a public client (token_endpoint_auth_method \"none\") must not have a secret")
	case !public && cc.ClientSecretHash != "" && cc.ClientSecret != "":
		return nil, nil, errAt(path, "set client_secret_hash or client_secret, not both")
	case !public && cc.ClientSecretHash != "":
		if err := clients.ValidateSecretHash(cc.ClientSecretHash); err != nil {
			return nil, nil, errAt(path+".client_secret_hash", "%v", err)
		}
		c.SecretHash = []byte(cc.ClientSecretHash)
	case !public && cc.ClientSecret != "":
		if strings.HasPrefix(cc.ClientSecret, "$") {
			return nil, nil, errAt(path+".client_secret", "looks like a hash; put it in client_secret_hash")
		}
		c.SecretHash = []byte(cc.ClientSecret)
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain client_secret: for development only; use `postern clients secret` and client_secret_hash", path, cc.ClientID))
	case !public:
		return nil, nil, errAt(path, "a confidential client needs client_secret_hash (see `postern clients secret`), or token_endpoint_auth_method \"none\" for a public client")
	}

	if len(cc.GrantTypes) == 0 {
		return nil, nil, errAt(path+".grant_types", "is required")
	}
	grants := map[string]bool{}
	for _, g := range cc.GrantTypes {
		if !knownGrants[g] {
			return nil, nil, errAt(path+".grant_types", "unknown grant %q", g)
		}
		if grants[g] {
			return nil, nil, errAt(path+".grant_types", "grant %q listed twice", g)
		}
		grants[g] = true
	}
	c.GrantTypes = cc.GrantTypes
	if grants[clients.GrantClientCredentials] && public {
		return nil, nil, errAt(path+".grant_types", "client_credentials needs a confidential client (RFC 6749 §4.4)")
	}
	if grants[clients.GrantPassword] && !cc.Trusted {
		return nil, nil, errAt(path+".grant_types", "the password grant is only for first-party clients with \"trusted\": true")
	}
	if grants[clients.GrantRefreshToken] && !grants[clients.GrantAuthorizationCode] && !grants[clients.GrantPassword] {
		return nil, nil, errAt(path+".grant_types", "refresh_token needs authorization_code or password: no other grant issues refresh tokens")
	}
	browser := grants[clients.GrantAuthorizationCode] || grants[clients.GrantImplicit]
	if browser && len(cc.RedirectURIs) == 0 {
		return nil, nil, errAt(path+".redirect_uris", "is required for authorization_code and implicit")
	}
	if !browser && len(cc.RedirectURIs) > 0 {
		return nil, nil, errAt(path+".redirect_uris", "only authorization_code and implicit clients have redirect URIs")
	}
	for j, u := range cc.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, nil, errAt(fmt.Sprintf("%s.redirect_uris[%d]", path, j), "%v", err)
		}
	}
	c.RedirectURIs = cc.RedirectURIs
	for _, rt := range cc.ResponseTypes {
		switch {
		case rt == "code" && grants[clients.GrantAuthorizationCode]:
		case rt == "token" && grants[clients.GrantImplicit]:
		case rt == "code" || rt == "token":
			return nil, nil, errAt(path+".response_types", "%q needs grant %s", rt, map[string]string{"code": "authorization_code", "token": "implicit"}[rt])
		default:
			return nil, nil, errAt(path+".response_types", "unknown response type %q (want code or token)", rt)
		}
	}
	c.ResponseTypes = cc.ResponseTypes
	for _, sc := range strings.Fields(cc.Scope) {
		if !scopeToken.MatchString(sc) {
			return nil, nil, errAt(path+".scope", "invalid scope %q", sc)
		}
		c.Scopes = append(c.Scopes, sc)
	}
	return c, warnings, nil
}

// validateRedirectURI enforces RFC 6749 §3.1.2 and RFC 9700 §2.1: absolute,
// no fragment, and plain http only for loopback (RFC 8252 §7.3). Private
// schemes (com.example.app:/cb) are allowed for native apps.
func validateRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%q is not an absolute URI", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q must not contain a fragment", s)
	}
	if strings.ContainsAny(s, "*") {
		return fmt.Errorf("%q: wildcards are not allowed; redirect URIs match exactly", s)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", s)
		}
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%q: plain http is only allowed for loopback addresses", s)
		}
	case "javascript", "data", "file", "vbscript":
		return fmt.Errorf("%q: scheme %q is not allowed", s, u.Scheme)
	}
	return nil
}

// reservedClaims are set by the token format; user claims (from users[] or
// mapped from SAML attributes) cannot override them.
var reservedClaims = map[string]bool{
	"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "scope": true, "active": true, "token_type": true, "username": true,
}

var usernamePattern = regexp.MustCompile(`^[^\s:]{1,256}$`)

func (uc userConfig) validate(path string) (identity.User, []string, error) {
	u := identity.User{Username: uc.Username, Claims: uc.Claims}
	if uc.Username == "" {
		return u, nil, errAt(path+".username", "is required")
	}
	// A colon is reserved: federated subjects are "provider:name".
	if !usernamePattern.MatchString(uc.Username) {
		return u, nil, errAt(path+".username", "%q must be 1-256 characters without spaces or colons", uc.Username)
	}
	var warnings []string
	switch {
	case uc.PasswordHash != "" && uc.Password != "":
		return u, nil, errAt(path, "set password_hash or password, not both")
	case uc.PasswordHash != "":
		if err := passhash.ValidatePasswordHash(uc.PasswordHash); err != nil {
			return u, nil, errAt(path+".password_hash", "%v", err)
		}
		u.PasswordHash = uc.PasswordHash
	case uc.Password != "":
		u.Password = uc.Password
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain password: for development only; use `postern users hash` and password_hash", path, uc.Username))
	default:
		return u, nil, errAt(path, "password_hash is required (see `postern users hash`)")
	}
	keys := make([]string, 0, len(uc.Claims))
	for k := range uc.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if reservedClaims[k] {
			return u, nil, errAt(path+".claims."+k, "is reserved by the token format")
		}
	}
	return u, warnings, nil
}

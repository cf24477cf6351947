package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/identity"
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
	AccessTokenFormat      string            `json:"access_token_format"`
	AccessTokenTTL         confjson.Duration `json:"access_token_ttl"`
	ImplicitAccessTokenTTL confjson.Duration `json:"implicit_access_token_ttl"`
	RefreshTokenTTL        confjson.Duration `json:"refresh_token_ttl"`
	AuthorizationCodeTTL   confjson.Duration `json:"authorization_code_ttl"`
}

type keysConfig struct {
	Algorithm string            `json:"algorithm"`
	Overlap   confjson.Duration `json:"rotation_overlap"`
	Reload    confjson.Duration `json:"reload_interval"` // shared stores only
	// RotateAfter is the age at which the server replaces its signing key.
	RotateAfter confjson.Duration `json:"rotate_after"`
}

type loginConfig struct {
	SessionTTL confjson.Duration `json:"session_ttl"`
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

// loadConfig reads, expands and validates a configuration file.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	raw, err := confjson.ReadFile(path)
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
	expanded, err := confjson.ExpandEnv(raw, getenv)
	if err != nil {
		return nil, err
	}
	var fc fileConfig
	if err := confjson.Decode(expanded, &fc, ""); err != nil {
		return nil, err
	}
	return fc.validate()
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
		return nil, confjson.Errorf("addr", "expected host:port, got %q", c.Addr)
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	}
	if fc.Store != "" {
		if err := validateStore(fc.Store); err != nil {
			return nil, confjson.Errorf("store", "%v", err)
		}
		c.Store = fc.Store
	}
	if fc.Issuer != "" {
		iss, err := confjson.Issuer(fc.Issuer)
		if err != nil {
			return nil, confjson.Errorf("issuer", "%v", err)
		}
		c.Issuer = iss
	}
	// Decoded here rather than with the file so that an unknown field or a
	// bad confjson.Duration is reported under "tokens" or "keys".
	var tc tokensConfig
	var kc keysConfig
	if len(fc.Tokens) > 0 {
		if err := confjson.Decode(fc.Tokens, &tc, "tokens"); err != nil {
			return nil, err
		}
	}
	if len(fc.Keys) > 0 {
		if err := confjson.Decode(fc.Keys, &kc, "keys"); err != nil {
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
		return nil, confjson.Errorf("keys.algorithm", "unknown algorithm %q (want ES256 or RS256)", kc.Algorithm)
	}
	if d := kc.Reload.Duration; d != 0 && d < time.Second {
		return nil, confjson.Errorf("keys.reload_interval", "must be at least 1s, got %s", d)
	}
	c.KeyReload = kc.Reload.Duration // zero: serve's default
	switch d := kc.RotateAfter.Duration; {
	case d == 0:
		c.KeyRotate = defaultKeyRotate
	case d < 24*time.Hour:
		return nil, confjson.Errorf("keys.rotate_after", "%s is shorter than 24h", d)
	default:
		c.KeyRotate = d
	}
	c.KeyOverlap = kc.Overlap.Duration
	if c.KeyOverlap == 0 {
		c.KeyOverlap = defaultKeyOverlap
	} else if c.KeyOverlap < 0 {
		return nil, confjson.Errorf("keys.rotation_overlap", "must be positive")
	}
	// A rotated-out key must stay published while tokens it signed live,
	// implicit-grant tokens included.
	if c.KeyOverlap < c.Lifetimes.AccessToken {
		return nil, confjson.Errorf("keys.rotation_overlap", "%s is shorter than access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.AccessToken)
	}
	if c.KeyOverlap < c.Lifetimes.ImplicitAccessToken {
		return nil, confjson.Errorf("keys.rotation_overlap", "%s is shorter than implicit_access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.ImplicitAccessToken)
	}

	var lc loginConfig
	if len(fc.Login) > 0 {
		if err := confjson.Decode(fc.Login, &lc, "login"); err != nil {
			return nil, err
		}
	}
	switch d := lc.SessionTTL.Duration; {
	case d == 0:
		c.SessionTTL = defaultSessionTTL
	case d < time.Minute || d > 30*24*time.Hour:
		return nil, confjson.Errorf("login.session_ttl", "%s is outside 1m to 720h", d)
	default:
		c.SessionTTL = d
	}

	if len(fc.TLS) > 0 {
		var tf confjson.TLSFiles
		if err := confjson.Decode(fc.TLS, &tf, "tls"); err != nil {
			return nil, err
		}
		if tf.CAFile != "" {
			return nil, confjson.Errorf("tls.ca_file", "client certificates are not supported; clients authenticate at the token endpoint")
		}
		cert, err := tf.LoadKeyPair("tls")
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.TLSFiles = [2]string{tf.CertFile, tf.KeyFile}
		if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") {
			return nil, confjson.Errorf("issuer", "%q is plain http while tls is set; clients would be told the wrong scheme", c.Issuer)
		}
	}
	switch fc.ForwardedHeader {
	case "", authz.HeaderXForwardedFor:
		c.ForwardedHeader = authz.HeaderXForwardedFor
	case authz.HeaderForwarded:
		c.ForwardedHeader = authz.HeaderForwarded
	default:
		return nil, confjson.Errorf("forwarded_header", "expected %q (X-Forwarded-For) or %q (RFC 7239), got %q", authz.HeaderXForwardedFor, authz.HeaderForwarded, fc.ForwardedHeader)
	}
	for i, p := range fc.TrustedProxies {
		prefix, err := parsePrefix(p)
		if err != nil {
			return nil, confjson.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix", p)
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}

	seen := map[string]int{}
	for i, raw := range fc.Clients {
		path := fmt.Sprintf("clients[%d]", i)
		var cc clientConfig
		if err := confjson.Decode(raw, &cc, path); err != nil {
			return nil, err
		}
		client, warn, err := cc.validate(path, c.Lifetimes)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[client.ID]; dup {
			return nil, confjson.Errorf(path+".client_id", "%q is already used by clients[%d]", client.ID, j)
		}
		seen[client.ID] = i
		c.Clients = append(c.Clients, client)
		c.Warnings = append(c.Warnings, warn...)
	}
	users := map[string]int{}
	for i, raw := range fc.Users {
		path := fmt.Sprintf("users[%d]", i)
		var uc userConfig
		if err := confjson.Decode(raw, &uc, path); err != nil {
			return nil, err
		}
		u, warn, err := uc.validate(path)
		if err != nil {
			return nil, err
		}
		if j, dup := users[u.Username]; dup {
			return nil, confjson.Errorf(path+".username", "%q is already used by users[%d]", u.Username, j)
		}
		if j, clash := seen[u.Username]; clash {
			// A JWT for a client-credentials token carries the client ID as
			// its subject (RFC 9068 §2.2); a user of the same name would be
			// indistinguishable from that machine.
			return nil, confjson.Errorf(path+".username", "%q is also the client_id of clients[%d]; subjects of users and machines must differ", u.Username, j)
		}
		users[u.Username] = i
		c.Users = append(c.Users, u)
		c.Warnings = append(c.Warnings, warn...)
	}
	for i, raw := range fc.SAMLProviders {
		path := fmt.Sprintf("saml_providers[%d]", i)
		var sc samlProviderConfig
		if err := confjson.Decode(raw, &sc, path); err != nil {
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
		return confjson.Errorf(path, "set jwks or jwks_uri, not both")
	case len(cc.JWKS) > 0:
		set, err := clients.ParseClientJWKS(cc.JWKS)
		if err != nil {
			return confjson.Errorf(path+".jwks", "%v", err)
		}
		c.JWKS = set
	case cc.JWKSURI != "":
		u, err := url.Parse(cc.JWKSURI)
		loopback := err == nil && u.Scheme == "http" && (u.Hostname() == "localhost" || net.ParseIP(u.Hostname()).IsLoopback())
		if err != nil || (u.Scheme != "https" && !loopback) || u.Host == "" {
			return confjson.Errorf(path+".jwks_uri", "%q must be an https URL (plain http only on loopback)", cc.JWKSURI)
		}
		c.JWKSURI = cc.JWKSURI
	default:
		return confjson.Errorf(path, "a private_key_jwt client needs jwks (its public keys) or jwks_uri")
	}
	c.AuthSigningAlg = cc.TokenEndpointAuthSigningAlg
	if c.AuthSigningAlg == "" {
		c.AuthSigningAlg = "RS256" // RFC 7591 / OpenID Connect registration default
	}
	if !slices.Contains(clients.ClientAssertionAlgs, c.AuthSigningAlg) {
		return confjson.Errorf(path+".token_endpoint_auth_signing_alg", "unsupported algorithm %q (want one of %s)", c.AuthSigningAlg, strings.Join(clients.ClientAssertionAlgs, ", "))
	}
	return nil
}

// parsePrefix takes a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (t tokensConfig) apply(c *Config) error {
	switch t.AccessTokenFormat {
	case "", authz.FormatOpaque:
		c.Format = authz.FormatOpaque
	case authz.FormatJWT:
		c.Format = authz.FormatJWT
	default:
		return confjson.Errorf("tokens.access_token_format", "unknown format %q (want \"opaque\" or \"jwt\")", t.AccessTokenFormat)
	}
	ttl := func(name string, d confjson.Duration, def time.Duration) (time.Duration, error) {
		switch {
		case d.Duration == 0:
			return def, nil
		case d.Duration < time.Second:
			return 0, confjson.Errorf("tokens."+name, "must be at least 1s, got %s", d.Duration)
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
		return confjson.Errorf("tokens.implicit_access_token_ttl", "%s exceeds the 24h limit for implicit tokens", c.Lifetimes.ImplicitAccessToken)
	}
	if c.Lifetimes.RefreshToken, err = ttl("refresh_token_ttl", t.RefreshTokenTTL, defaultRefreshTTL); err != nil {
		return err
	}
	if c.Lifetimes.AuthorizationCode, err = ttl("authorization_code_ttl", t.AuthorizationCodeTTL, defaultCodeTTL); err != nil {
		return err
	}
	if c.Lifetimes.AuthorizationCode > time.Hour {
		return confjson.Errorf("tokens.authorization_code_ttl", "%s is too long; codes must be short-lived (at most 1h)", c.Lifetimes.AuthorizationCode)
	}
	return nil
}

var (
	knownGrants = map[string]bool{
		clients.GrantAuthorizationCode: true, clients.GrantImplicit: true, clients.GrantPassword: true,
		clients.GrantClientCredentials: true, clients.GrantRefreshToken: true,
	}
)

func (cc clientConfig) validate(path string, lt clients.Lifetimes) (*clients.Client, []string, error) {
	var warnings []string
	if cc.ClientID == "" {
		return nil, nil, confjson.Errorf(path+".client_id", "is required")
	}
	if err := confjson.ClientID(cc.ClientID); err != nil {
		return nil, nil, confjson.Errorf(path+".client_id", "%v", err)
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
		return nil, nil, confjson.Errorf(path+".token_endpoint_auth_method", "unknown method %q (want client_secret_basic, client_secret_post, private_key_jwt or none)", cc.TokenEndpointAuthMethod)
	}
	if c.TokenEndpointAuthMethod != clients.AuthPrivateKeyJWT && (len(cc.JWKS) > 0 || cc.JWKSURI != "" || cc.TokenEndpointAuthSigningAlg != "") {
		return nil, nil, confjson.Errorf(path, "jwks, jwks_uri and token_endpoint_auth_signing_alg belong to token_endpoint_auth_method \"private_key_jwt\"")
	}
	public := c.TokenEndpointAuthMethod == clients.AuthNone
	keyAuth := c.TokenEndpointAuthMethod == clients.AuthPrivateKeyJWT
	switch {
	case keyAuth && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, confjson.Errorf(path, "a private_key_jwt client authenticates with its key and must not have a secret")
	case keyAuth:
	case public && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, confjson.Errorf(path, "a public client (token_endpoint_auth_method \"none\") must not have a secret")
	case !public && cc.ClientSecretHash != "" && cc.ClientSecret != "":
		return nil, nil, confjson.Errorf(path, "set client_secret_hash or client_secret, not both")
	case !public && cc.ClientSecretHash != "":
		if err := clients.ValidateSecretHash(cc.ClientSecretHash); err != nil {
			return nil, nil, confjson.Errorf(path+".client_secret_hash", "%v", err)
		}
		c.SecretHash = []byte(cc.ClientSecretHash)
	case !public && cc.ClientSecret != "":
		if strings.HasPrefix(cc.ClientSecret, "$") {
			return nil, nil, confjson.Errorf(path+".client_secret", "looks like a hash; put it in client_secret_hash")
		}
		c.SecretHash = []byte(cc.ClientSecret)
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain client_secret: for development only; use `postern clients secret` and client_secret_hash", path, cc.ClientID))
	case !public:
		return nil, nil, confjson.Errorf(path, "a confidential client needs client_secret_hash (see `postern clients secret`), or token_endpoint_auth_method \"none\" for a public client")
	}

	if len(cc.GrantTypes) == 0 {
		return nil, nil, confjson.Errorf(path+".grant_types", "is required")
	}
	grants := map[string]bool{}
	for _, g := range cc.GrantTypes {
		if !knownGrants[g] {
			return nil, nil, confjson.Errorf(path+".grant_types", "unknown grant %q", g)
		}
		if grants[g] {
			return nil, nil, confjson.Errorf(path+".grant_types", "grant %q listed twice", g)
		}
		grants[g] = true
	}
	c.GrantTypes = cc.GrantTypes
	if grants[clients.GrantClientCredentials] && public {
		return nil, nil, confjson.Errorf(path+".grant_types", "client_credentials needs a confidential client (RFC 6749 §4.4)")
	}
	if grants[clients.GrantPassword] && !cc.Trusted {
		return nil, nil, confjson.Errorf(path+".grant_types", "the password grant is only for first-party clients with \"trusted\": true")
	}
	if grants[clients.GrantRefreshToken] && !grants[clients.GrantAuthorizationCode] && !grants[clients.GrantPassword] {
		return nil, nil, confjson.Errorf(path+".grant_types", "refresh_token needs authorization_code or password: no other grant issues refresh tokens")
	}
	browser := grants[clients.GrantAuthorizationCode] || grants[clients.GrantImplicit]
	if browser && len(cc.RedirectURIs) == 0 {
		return nil, nil, confjson.Errorf(path+".redirect_uris", "is required for authorization_code and implicit")
	}
	if !browser && len(cc.RedirectURIs) > 0 {
		return nil, nil, confjson.Errorf(path+".redirect_uris", "only authorization_code and implicit clients have redirect URIs")
	}
	for j, u := range cc.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, nil, confjson.Errorf(fmt.Sprintf("%s.redirect_uris[%d]", path, j), "%v", err)
		}
	}
	c.RedirectURIs = cc.RedirectURIs
	for _, rt := range cc.ResponseTypes {
		switch {
		case rt == "code" && grants[clients.GrantAuthorizationCode]:
		case rt == "token" && grants[clients.GrantImplicit]:
		case rt == "code" || rt == "token":
			return nil, nil, confjson.Errorf(path+".response_types", "%q needs grant %s", rt, map[string]string{"code": "authorization_code", "token": "implicit"}[rt])
		default:
			return nil, nil, confjson.Errorf(path+".response_types", "unknown response type %q (want code or token)", rt)
		}
	}
	c.ResponseTypes = cc.ResponseTypes
	for _, sc := range strings.Fields(cc.Scope) {
		if !confjson.ScopeToken(sc) {
			return nil, nil, confjson.Errorf(path+".scope", "invalid scope %q", sc)
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
		return u, nil, confjson.Errorf(path+".username", "is required")
	}
	// A colon is reserved: federated subjects are "provider:name".
	if !usernamePattern.MatchString(uc.Username) {
		return u, nil, confjson.Errorf(path+".username", "%q must be 1-256 characters without spaces or colons", uc.Username)
	}
	var warnings []string
	switch {
	case uc.PasswordHash != "" && uc.Password != "":
		return u, nil, confjson.Errorf(path, "set password_hash or password, not both")
	case uc.PasswordHash != "":
		if err := passhash.ValidatePasswordHash(uc.PasswordHash); err != nil {
			return u, nil, confjson.Errorf(path+".password_hash", "%v", err)
		}
		u.PasswordHash = uc.PasswordHash
	case uc.Password != "":
		u.Password = uc.Password
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain password: for development only; use `postern users hash` and password_hash", path, uc.Username))
	default:
		return u, nil, confjson.Errorf(path, "password_hash is required (see `postern users hash`)")
	}
	keys := make([]string, 0, len(uc.Claims))
	for k := range uc.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if reservedClaims[k] {
			return u, nil, confjson.Errorf(path+".claims."+k, "is reserved by the token format")
		}
	}
	return u, warnings, nil
}

package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern-auth/postern/acmecert"
	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/netedge"
	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/tracing"
)

// The server's configuration file is a shell, as in Dex: each block
// belongs to the part it configures, which decodes and checks it under
// its path (clients → clients, users → identity, saml_providers → samlsp,
// apis → catalog, tokens and login → authz, keys → keys). This file keeps the top-level
// fields and the checks that span parts.

// fileConfig is the server's JSON configuration as written in git. Field
// names are the external contract (DESIGN.md); client fields use RFC 7591.
type fileConfig struct {
	Issuer string `json:"issuer"`
	Addr   string `json:"addr"`
	// AdminListen serves /metrics apart from the public port (off unless set).
	AdminListen   string            `json:"admin_listen"`
	DataDir       string            `json:"data_dir"`
	Store         string            `json:"store"`  // postgres:// DSN; empty means bbolt in data_dir
	Tokens        json.RawMessage   `json:"tokens"` // authz.TokensFileConfig, decoded under its own path
	Keys          json.RawMessage   `json:"keys"`   // keys.FileConfig, likewise
	Login         json.RawMessage   `json:"login"`  // authz.LoginFileConfig, likewise
	Clients       []json.RawMessage `json:"clients"`
	Users         []json.RawMessage `json:"users"`
	SAMLProviders []json.RawMessage `json:"saml_providers"`
	APIs          []json.RawMessage `json:"apis"` // the developer portal's API catalogue
	// TrustedProxies are load balancers whose forwarding headers name the
	// real client (for the audit log and the login throttle).
	TrustedProxies []string `json:"trusted_proxies"`
	// ForwardedHeader: "x-forwarded" (default) or "forwarded", the one
	// header family those proxies overwrite.
	ForwardedHeader string `json:"forwarded_header"`
	// TLS serves HTTPS directly, without a terminating proxy.
	TLS json.RawMessage `json:"tls"`
	// Registration (RFC 7591) and Portal: authz.RegistrationFileConfig
	// and authz.PortalFileConfig, decoded under their own paths.
	Registration json.RawMessage `json:"registration"`
	Portal       json.RawMessage `json:"portal"`
	// Tracing exports OpenTelemetry spans (tracing.FileConfig); absent: off.
	Tracing json.RawMessage `json:"tracing"`
}

// Config is the validated server configuration.
type Config struct {
	Issuer       string
	Addr         string
	AdminListen  string // "": no metrics listener
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
	// ACME: certificates from an ACME CA (tls.acme) instead of TLSFiles;
	// TLS is then completed by serve.
	ACME *acmecert.Config
	// SAMLProviders are the identity providers of the login page, metadata
	// files already read (see samlsp.FileProvider).
	SAMLProviders []samlsp.FileProvider
	// Catalog is the API catalogue (apis), OpenAPI documents read by
	// loadConfig; nil when the file lists no API.
	Catalog *catalog.Catalog
	// Tracing: nil when off. Read at start; a reload keeps the first.
	Tracing *tracing.Config
	// Warnings are logged at start: development shortcuts that work but must
	// not reach production.
	Warnings []string
	// RegistrationTokenHash turns RFC 7591 registration on; Portal says
	// who may use the developer portal.
	RegistrationTokenHash []byte
	Portal                authz.Portal
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
	if cfg.Catalog, err = cfg.Catalog.ReadOpenAPI(filepath.Dir(path)); err != nil {
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
	defaultAddr    = "127.0.0.1:4444"
	defaultDataDir = "postern-data"
)

func (fc *fileConfig) validate() (*Config, error) {
	c := &Config{Addr: fc.Addr, AdminListen: fc.AdminListen, DataDir: fc.DataDir}
	for _, step := range []func(*Config) error{fc.server, fc.tokens, fc.network, fc.clients, fc.users, fc.samlProviders, fc.developers, fc.apis, fc.tracing} {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// server reads addr, data_dir, store, issuer and tls.
func (fc *fileConfig) server(c *Config) error {
	if c.Addr == "" {
		c.Addr = defaultAddr
	} else if err := confjson.HostPort(c.Addr); err != nil {
		return confjson.Errorf("addr", "%v", err)
	}
	if c.AdminListen != "" {
		if err := confjson.HostPort(c.AdminListen); err != nil {
			return confjson.Errorf("admin_listen", "%v", err)
		}
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	}
	if fc.Store != "" {
		if err := validateStore(fc.Store); err != nil {
			return confjson.Errorf("store", "%v", err)
		}
		c.Store = fc.Store
	}
	if fc.Issuer != "" {
		iss, err := confjson.Issuer(fc.Issuer)
		if err != nil {
			return confjson.Errorf("issuer", "%v", err)
		}
		c.Issuer = iss
	}
	return nil
}

// tokens reads tokens, keys and login, and checks that a rotated-out key
// stays published while tokens it signed live, implicit-grant tokens
// included.
func (fc *fileConfig) tokens(c *Config) error {
	var err error
	if c.Format, c.Lifetimes, err = authz.ParseTokensConfig("tokens", fc.Tokens); err != nil {
		return err
	}
	ks, err := keys.ParseConfig("keys", fc.Keys)
	if err != nil {
		return err
	}
	c.KeyAlgorithm, c.KeyOverlap, c.KeyReload, c.KeyRotate = ks.Algorithm, ks.Overlap, ks.Reload, ks.RotateAfter
	if c.KeyOverlap < c.Lifetimes.AccessToken {
		return confjson.Errorf("keys.rotation_overlap", "%s is shorter than access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.AccessToken)
	}
	if c.KeyOverlap < c.Lifetimes.ImplicitAccessToken {
		return confjson.Errorf("keys.rotation_overlap", "%s is shorter than implicit_access_token_ttl %s: tokens would outlive their key", c.KeyOverlap, c.Lifetimes.ImplicitAccessToken)
	}
	c.SessionTTL, err = authz.ParseLoginConfig("login", fc.Login)
	return err
}

// network reads tls, forwarded_header and trusted_proxies.
func (fc *fileConfig) network(c *Config) error {
	if len(fc.TLS) > 0 {
		var tf struct {
			confjson.TLSFiles
			ACME json.RawMessage `json:"acme"`
		}
		if err := confjson.Decode(fc.TLS, &tf, "tls"); err != nil {
			return err
		}
		if tf.CAFile != "" {
			return confjson.Errorf("tls.ca_file", "client certificates are not supported; clients authenticate at the token endpoint")
		}
		if len(tf.ACME) > 0 {
			if tf.CertFile != "" || tf.KeyFile != "" {
				return confjson.Errorf("tls.acme", "set cert_file and key_file, or acme, not both")
			}
			ac, err := acmecert.ParseConfig("tls.acme", tf.ACME)
			if err != nil {
				return err
			}
			c.ACME = ac
			// The listener's certificates come from the ACME manager,
			// which serve builds once the store is open.
			c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		} else {
			cert, err := tf.LoadKeyPair("tls")
			if err != nil {
				return err
			}
			c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			c.TLSFiles = [2]string{tf.CertFile, tf.KeyFile}
		}
		if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") {
			return confjson.Errorf("issuer", "%q is plain http while tls is set; clients would be told the wrong scheme", c.Issuer)
		}
	}
	switch fc.ForwardedHeader {
	case "", authz.HeaderXForwardedFor:
		c.ForwardedHeader = authz.HeaderXForwardedFor
	case authz.HeaderForwarded:
		c.ForwardedHeader = authz.HeaderForwarded
	default:
		return confjson.Errorf("forwarded_header", "expected %q (X-Forwarded-For) or %q (RFC 7239), got %q", authz.HeaderXForwardedFor, authz.HeaderForwarded, fc.ForwardedHeader)
	}
	for i, p := range fc.TrustedProxies {
		prefix, err := netedge.ParsePrefix(p)
		if err != nil {
			return confjson.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}
	return nil
}

// developers reads registration and portal: the two ways clients are
// registered at runtime.
func (fc *fileConfig) developers(c *Config) error {
	var err error
	if c.RegistrationTokenHash, err = authz.ParseRegistrationConfig("registration", fc.Registration); err != nil {
		return err
	}
	c.Portal, err = authz.ParsePortalConfig("portal", fc.Portal)
	return err
}

func (fc *fileConfig) clients(c *Config) error {
	seen := map[string]int{}
	for i, raw := range fc.Clients {
		path := confjson.Index("clients", i)
		client, warn, err := clients.ParseConfig(path, raw, c.Lifetimes)
		if err != nil {
			return err
		}
		if j, dup := seen[client.ID]; dup {
			return confjson.Errorf(path+".client_id", "%q is already used by clients[%d]", client.ID, j)
		}
		seen[client.ID] = i
		c.Clients = append(c.Clients, client)
		c.Warnings = append(c.Warnings, warn...)
	}
	return nil
}

func (fc *fileConfig) users(c *Config) error {
	clientAt := map[string]int{}
	for i, cl := range c.Clients {
		clientAt[cl.ID] = i
	}
	users := map[string]int{}
	for i, raw := range fc.Users {
		path := confjson.Index("users", i)
		u, warn, err := identity.ParseUserConfig(path, raw)
		if err != nil {
			return err
		}
		if j, dup := users[u.Username]; dup {
			return confjson.Errorf(path+".username", "%q is already used by users[%d]", u.Username, j)
		}
		if j, clash := clientAt[u.Username]; clash {
			// A JWT for a client-credentials token carries the client ID as
			// its subject (RFC 9068 §2.2); a user of the same name would be
			// indistinguishable from that machine.
			return confjson.Errorf(path+".username", "%q is also the client_id of clients[%d]; subjects of users and machines must differ", u.Username, j)
		}
		users[u.Username] = i
		c.Users = append(c.Users, u)
		c.Warnings = append(c.Warnings, warn...)
	}
	return nil
}

func (fc *fileConfig) samlProviders(c *Config) error {
	for i, raw := range fc.SAMLProviders {
		p, warn, err := samlsp.ParseProviderConfig(confjson.Index("saml_providers", i), raw)
		if err != nil {
			return err
		}
		c.SAMLProviders = append(c.SAMLProviders, p)
		c.Warnings = append(c.Warnings, warn...)
	}
	return samlsp.CheckProviders(c.SAMLProviders)
}

// apis reads the API catalogue; its OpenAPI files are read by loadConfig,
// which knows the configuration file's directory.
func (fc *fileConfig) apis(c *Config) error {
	if len(fc.APIs) == 0 {
		return nil
	}
	apis := make([]*catalog.API, 0, len(fc.APIs))
	for i, raw := range fc.APIs {
		a, err := catalog.ParseAPIConfig(confjson.Index("apis", i), raw)
		if err != nil {
			return err
		}
		apis = append(apis, a)
	}
	var err error
	c.Catalog, err = catalog.New(apis)
	return err
}

func (fc *fileConfig) tracing(c *Config) (err error) {
	c.Tracing, err = tracing.ParseConfig("tracing", fc.Tracing, tracing.DefaultServerName)
	return err
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

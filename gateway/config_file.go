package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/postern-auth/postern/acmecert"
	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/netedge"
	"github.com/postern-auth/postern/tracing"
)

// The gateway's JSON configuration file, as written in git. Parsing turns
// text into a Config: JSON shape, URLs, durations, CIDRs, certificate
// files, and the defaults of absent fields, plus the few rules only the
// text can show (an explicit "0s" where zero would mean "default", a bare
// "#"). Every rule about the values themselves is Config.check's, which
// ParseConfig runs, so each rule is written once and a hand-built Config
// is held to the same ones.
//
// Nested objects are kept raw and decoded under their own path, so an
// unknown field is reported as "routes[1].upstream_auth: unknown field".
// Durations are strings, so "0s" differs from absent.
type fileConfig struct {
	Listen          string                     `json:"listen"`
	TLS             json.RawMessage            `json:"tls"`
	DataDir         string                     `json:"data_dir"`
	AdminListen     string                     `json:"admin_listen"`
	Issuer          string                     `json:"issuer"`
	ClientID        string                     `json:"client_id"`
	ClientSecret    string                     `json:"client_secret"`
	Audience        string                     `json:"audience"`
	PublicURL       string                     `json:"public_url"`
	TrustedProxies  []string                   `json:"trusted_proxies"`
	ForwardedHeader string                     `json:"forwarded_header"`
	Cache           json.RawMessage            `json:"cache"`
	JWKS            json.RawMessage            `json:"jwks"`
	Tiers           map[string]json.RawMessage `json:"tiers"`
	ClientTiers     map[string]string          `json:"client_tiers"`
	Routes          []json.RawMessage          `json:"routes"`
	ClaimHeaders    map[string]string          `json:"claim_headers"`
	Tracing         json.RawMessage            `json:"tracing"`
}

type cacheFile struct {
	TTL         string `json:"ttl"`
	NegativeTTL string `json:"negative_ttl"`
	MaxEntries  *int   `json:"max_entries"`
}

type jwksFile struct {
	MaxAge             string `json:"max_age"`
	MinRefetchInterval string `json:"min_refetch_interval"`
}

type tierFile struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
	Burst    int    `json:"burst"`
}

type routeFile struct {
	PathPrefix           string          `json:"path_prefix"`
	Upstream             string          `json:"upstream"`
	StripPrefix          bool            `json:"strip_prefix"`
	Scopes               []string        `json:"scopes"`
	Tier                 string          `json:"tier"`
	Public               bool            `json:"public"`
	UpstreamAuth         json.RawMessage `json:"upstream_auth"`
	ForwardAuthorization bool            `json:"forward_authorization"`
	Timeout              string          `json:"timeout"`
	CORS                 json.RawMessage `json:"cors"`
}

type corsFile struct {
	AllowedOrigins   []string `json:"allowed_origins"`
	AllowedHeaders   []string `json:"allowed_headers"`
	ExposedHeaders   []string `json:"exposed_headers"`
	MaxAge           string   `json:"max_age"`
	AllowCredentials bool     `json:"allow_credentials"`
}

type upstreamAuthFile struct {
	Basic json.RawMessage `json:"basic"`
	TLS   json.RawMessage `json:"tls"`
}

type basicFile struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// FileConfig is a validated configuration file of `postern gateway`: the
// gateway's Config and the listeners the command opens for it.
type FileConfig struct {
	Listen string
	TLS    *tls.Config // nil: plain HTTP
	// ACME: the listener's certificates come from an ACME CA (tls.acme);
	// TLS is then completed by the command.
	ACME *acmecert.Config
	// DataDir keeps what the gateway must not lose across restarts: its
	// ACME account key and certificates (in DataDir/acme).
	DataDir     string
	AdminListen string // "": no admin listener
	// Tracing: nil when off. Read at start; a reload keeps the first.
	Tracing *tracing.Config
	Gateway Config
}

// DefaultListen is the listen address when the file names none.
const DefaultListen = "127.0.0.1:8080"

// LoadConfig reads, expands and validates the configuration file at path;
// getenv resolves ${ENV_VAR} references.
func LoadConfig(path string, getenv func(string) string) (*FileConfig, error) {
	raw, err := confjson.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(raw, getenv)
}

// ParseConfig expands and validates a configuration file's contents.
func ParseConfig(raw []byte, getenv func(string) string) (*FileConfig, error) {
	expanded, err := confjson.ExpandEnv(raw, getenv)
	if err != nil {
		return nil, err
	}
	var f fileConfig
	if err := confjson.Decode(expanded, &f, ""); err != nil {
		return nil, err
	}
	c, err := f.listeners()
	if err != nil {
		return nil, err
	}
	if c.Tracing, err = tracing.ParseConfig("tracing", f.Tracing, tracing.DefaultGatewayName); err != nil {
		return nil, err
	}
	g := &c.Gateway
	for _, step := range []func(*Config) error{f.identity, f.caches, f.rateLimits, f.routes} {
		if err := step(g); err != nil {
			return nil, err
		}
	}
	g.ClaimHeaders = f.ClaimHeaders
	if g.ClaimHeaders == nil {
		g.ClaimHeaders = map[string]string{}
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	// Checked as written, compared without the slash (discovery's issuer).
	g.Issuer = strings.TrimSuffix(g.Issuer, "/")
	return c, nil
}

// listeners reads listen, admin_listen and tls: the command's, not the
// gateway's, so checked here.
func (f *fileConfig) listeners() (*FileConfig, error) {
	c := &FileConfig{Listen: f.Listen, AdminListen: f.AdminListen, DataDir: f.DataDir}
	if c.Listen == "" {
		c.Listen = DefaultListen
	} else if err := confjson.HostPort(c.Listen); err != nil {
		return nil, confjson.Errorf("listen", "%v", err)
	}
	if c.AdminListen != "" {
		if err := confjson.HostPort(c.AdminListen); err != nil {
			return nil, confjson.Errorf("admin_listen", "%v", err)
		}
		if _, port, _ := net.SplitHostPort(c.Listen); c.AdminListen == c.Listen && port != "0" {
			return nil, confjson.Errorf("admin_listen", "must differ from listen: metrics are not for the public")
		}
	}
	if len(f.TLS) > 0 {
		var tf struct {
			confjson.TLSFiles
			ACME json.RawMessage `json:"acme"`
		}
		if err := confjson.Decode(f.TLS, &tf, "tls"); err != nil {
			return nil, err
		}
		if tf.CAFile != "" {
			return nil, confjson.Errorf("tls.ca_file", "client certificates toward the gateway are not supported")
		}
		if len(tf.ACME) > 0 {
			return c, f.acme(c, tf.TLSFiles, tf.ACME)
		}
		cert, err := tf.LoadKeyPair("tls")
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return c, nil
}

// acme reads tls.acme. The gateway keeps its ACME account and certificates
// in files under data_dir (it has no store, and must not import one), so
// data_dir is required with it.
func (f *fileConfig) acme(c *FileConfig, tf confjson.TLSFiles, raw json.RawMessage) error {
	if tf.CertFile != "" || tf.KeyFile != "" {
		return confjson.Errorf("tls.acme", "set cert_file and key_file, or acme, not both")
	}
	ac, err := acmecert.ParseConfig("tls.acme", raw)
	if err != nil {
		return err
	}
	if f.DataDir == "" {
		return confjson.Errorf("data_dir", "is required with tls.acme: the ACME account key and certificates are kept there, so that a restart does not order again")
	}
	c.ACME = ac
	c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	return nil
}

// identity reads issuer, client credentials, public_url, trusted_proxies
// and forwarded_header.
func (f *fileConfig) identity(g *Config) error {
	g.Issuer, g.ClientID, g.ClientSecret, g.Audience = f.Issuer, f.ClientID, f.ClientSecret, f.Audience
	if f.PublicURL != "" {
		u, err := url.Parse(f.PublicURL)
		if err != nil {
			return confjson.Errorf("public_url", "expected an absolute http(s) URL such as https://api.example.com, got %q", f.PublicURL)
		}
		// A bare "?" or "#" leaves no trace in the parsed URL.
		if strings.ContainsAny(f.PublicURL, "?#") {
			return confjson.Errorf("public_url", "must not contain user info, a query or a fragment")
		}
		g.PublicURL = u
	}
	for i, s := range f.TrustedProxies {
		p, err := netedge.ParsePrefix(s)
		if err != nil {
			return confjson.Errorf(confjson.Index("trusted_proxies", i), "%v", err)
		}
		g.TrustedProxies = append(g.TrustedProxies, p)
	}
	g.ForwardedHeader = f.ForwardedHeader
	if g.ForwardedHeader == "" {
		g.ForwardedHeader = ForwardedHeaderX
	}
	return nil
}

func (f *fileConfig) caches(g *Config) error {
	g.Cache = CacheConfig{TTL: DefaultCacheTTL, NegativeTTL: DefaultNegativeTTL, MaxEntries: DefaultCacheEntries}
	if len(f.Cache) > 0 {
		var cf cacheFile
		if err := confjson.Decode(f.Cache, &cf, "cache"); err != nil {
			return err
		}
		var err error
		if g.Cache.TTL, err = confjson.ParseDuration("cache.ttl", cf.TTL, g.Cache.TTL, noMinimum); err != nil {
			return err
		}
		if g.Cache.NegativeTTL, err = confjson.ParseDuration("cache.negative_ttl", cf.NegativeTTL, g.Cache.NegativeTTL, noMinimum); err != nil {
			return err
		}
		if cf.MaxEntries != nil {
			// In a Config zero means the default; written, it is a mistake.
			if *cf.MaxEntries < 1 {
				return confjson.Errorf("cache.max_entries", "must be at least 1 (set ttl to \"0s\" to disable the cache)")
			}
			g.Cache.MaxEntries = *cf.MaxEntries
		}
	}
	if len(f.JWKS) > 0 {
		var jf jwksFile
		if err := confjson.Decode(f.JWKS, &jf, "jwks"); err != nil {
			return err
		}
		// Zero means the default in a Config, so the written minimums of
		// these two are the file's to check.
		var err error
		if g.JWKS.MaxAge, err = confjson.ParseDuration("jwks.max_age", jf.MaxAge, DefaultJWKSMaxAge, time.Second); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval, err = confjson.ParseDuration("jwks.min_refetch_interval", jf.MinRefetchInterval, DefaultJWKSMinRefetch, 0); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval == 0 {
			g.JWKS.MinRefetchInterval = -1 // explicit "0s": no limit
		}
	}
	return nil
}

// noMinimum leaves a duration's bounds to Config.check.
const noMinimum = time.Duration(-1 << 63)

func (f *fileConfig) rateLimits(g *Config) error {
	g.Tiers = map[string]Tier{}
	for _, name := range slices.Sorted(maps.Keys(f.Tiers)) {
		path := "tiers." + name
		var tf tierFile
		if err := confjson.Decode(f.Tiers[name], &tf, path); err != nil {
			return err
		}
		if tf.Per == "" {
			return confjson.Errorf(path+".per", `is required, e.g. "1s" or "1m"`)
		}
		per, err := confjson.ParseDuration(path+".per", tf.Per, 0, noMinimum)
		if err != nil {
			return err
		}
		g.Tiers[name] = Tier{Requests: tf.Requests, Per: per, Burst: tf.Burst}
	}
	g.ClientTiers = f.ClientTiers
	if g.ClientTiers == nil {
		g.ClientTiers = map[string]string{}
	}
	return nil
}

func (f *fileConfig) routes(g *Config) error {
	for i, raw := range f.Routes {
		path := confjson.Index("routes", i)
		var rf routeFile
		if err := confjson.Decode(raw, &rf, path); err != nil {
			return err
		}
		r, err := rf.route(path)
		if err != nil {
			return err
		}
		g.Routes = append(g.Routes, r)
	}
	return nil
}

func (rf *routeFile) route(path string) (Route, error) {
	r := Route{
		PathPrefix:           rf.PathPrefix,
		StripPrefix:          rf.StripPrefix,
		Scopes:               rf.Scopes,
		Tier:                 rf.Tier,
		Public:               rf.Public,
		ForwardAuthorization: rf.ForwardAuthorization,
	}
	if rf.Upstream != "" {
		u, err := url.Parse(rf.Upstream)
		if err != nil {
			return r, confjson.Errorf(path+".upstream", "expected an absolute http(s) URL, got %q", rf.Upstream)
		}
		// A bare "#" leaves no trace in the parsed URL.
		if strings.HasSuffix(rf.Upstream, "#") {
			return r, confjson.Errorf(path+".upstream", "must not contain a fragment")
		}
		r.Upstream = u
	}
	var err error
	// Zero means the default in a Config; written, "0s" is a mistake.
	if r.Timeout, err = confjson.ParseDuration(path+".timeout", rf.Timeout, DefaultUpstreamTimeout, time.Millisecond); err != nil {
		return r, err
	}
	if len(rf.UpstreamAuth) > 0 {
		if err := rf.upstreamAuth(path+".upstream_auth", &r); err != nil {
			return r, err
		}
	}
	if len(rf.CORS) > 0 {
		if r.CORS, err = corsConfig(path+".cors", rf.CORS); err != nil {
			return r, err
		}
	}
	return r, nil
}

// corsConfig reads a route's cors block.
func corsConfig(path string, raw json.RawMessage) (*CORS, error) {
	var cf corsFile
	if err := confjson.Decode(raw, &cf, path); err != nil {
		return nil, err
	}
	maxAge, err := confjson.ParseDuration(path+".max_age", cf.MaxAge, 0, noMinimum)
	if err != nil {
		return nil, err
	}
	return &CORS{AllowedOrigins: cf.AllowedOrigins, AllowedHeaders: cf.AllowedHeaders, ExposedHeaders: cf.ExposedHeaders,
		MaxAge: maxAge, AllowCredentials: cf.AllowCredentials}, nil
}

func (rf *routeFile) upstreamAuth(path string, r *Route) error {
	var af upstreamAuthFile
	if err := confjson.Decode(rf.UpstreamAuth, &af, path); err != nil {
		return err
	}
	switch {
	case len(af.Basic) > 0 && len(af.TLS) > 0:
		return confjson.Errorf(path, "set basic or tls, not both")
	case len(af.Basic) > 0:
		var bf basicFile
		if err := confjson.Decode(af.Basic, &bf, path+".basic"); err != nil {
			return err
		}
		r.BasicAuth = &BasicAuth{Username: bf.Username, Password: bf.Password}
	case len(af.TLS) > 0:
		var tf confjson.TLSFiles
		if err := confjson.Decode(af.TLS, &tf, path+".tls"); err != nil {
			return err
		}
		r.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		// Toward a plain-http upstream check refuses the block; its files
		// are not worth reading first.
		if r.Upstream != nil && r.Upstream.Scheme == "https" {
			return upstreamTLS(path+".tls", tf, r.TLS)
		}
	default:
		return confjson.Errorf(path, "set basic or tls")
	}
	return nil
}

// upstreamTLS reads a route's client certificate and private CA into cfg.
func upstreamTLS(path string, tf confjson.TLSFiles, cfg *tls.Config) error {
	if tf.CertFile != "" || tf.KeyFile != "" {
		cert, err := tf.LoadKeyPair(path)
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if tf.CAFile != "" {
		pem, err := os.ReadFile(tf.CAFile)
		if err != nil {
			return confjson.Errorf(path+".ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return confjson.Errorf(path+".ca_file", "%s holds no PEM certificates", tf.CAFile)
		}
		cfg.RootCAs = pool
	}
	return nil
}

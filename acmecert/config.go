// Package acmecert gets the TLS certificates of `postern serve` and
// `postern gateway` from an ACME CA (Let's Encrypt) by itself. It owns the
// tls.acme configuration block of both configs, the autocert.Manager built
// from it (golang.org/x/crypto/acme/autocert does the protocol), the cache
// that keeps certificates and the account key in the server's store sealed
// with the system secret, the upkeep loop that orders eagerly, logs the
// CA's problem documents and retries with backoff, and the expiry metric.
//
// It knows nothing of storage backends, keys or the gateway: the command
// hands it a cache (NewStoreCache over the store, or autocert.DirCache) and
// a sealer, so the gateway can use it without importing the store.
package acmecert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/postern-auth/postern/confjson"
)

// Challenge types tls.acme.challenge accepts.
const (
	ChallengeTLSALPN = "tls-alpn-01"
	ChallengeHTTP    = "http-01"
)

// DefaultRenewBefore is renew_before when absent: Let's Encrypt's own
// advice for 90-day certificates, and autocert's upper bound.
const DefaultRenewBefore = 30 * 24 * time.Hour

// minRenewBefore keeps a typo ("30s" for "30d") from renewing in a loop.
const minRenewBefore = time.Minute

// Config is a validated tls.acme block.
type Config struct {
	// Domains are the only names a certificate is ever ordered for; a
	// handshake for any other name is refused without asking the CA.
	Domains      []string
	Email        string
	DirectoryURL string
	// CARootsFile and Roots: the CA certificates the ACME directory's own
	// TLS certificate is checked against (a private ACME server); nil
	// Roots means the system's.
	CARootsFile string
	Roots       *x509.CertPool
	Challenge   string
	// HTTPListen serves the HTTP-01 challenge and redirects everything
	// else to https; required with http-01, optional with tls-alpn-01.
	HTTPListen  string
	RenewBefore time.Duration
}

type fileConfig struct {
	Domains      []string `json:"domains"`
	Email        string   `json:"email"`
	DirectoryURL string   `json:"directory_url"`
	CARootsFile  string   `json:"ca_roots_file"`
	Challenge    string   `json:"challenge"`
	HTTPListen   string   `json:"http_listen"`
	RenewBefore  string   `json:"renew_before"`
}

// ParseConfig reads the block raw found at path ("tls.acme") and checks
// every rule `postern check` reports: names are DNS names (no wildcard,
// which neither challenge can prove), the directory is https unless
// ca_roots_file trusts a private server, http-01 has http_listen.
func ParseConfig(path string, raw json.RawMessage) (*Config, error) {
	var f fileConfig
	if err := confjson.Decode(raw, &f, path); err != nil {
		return nil, err
	}
	c := &Config{Email: f.Email, DirectoryURL: f.DirectoryURL, CARootsFile: f.CARootsFile,
		Challenge: f.Challenge, HTTPListen: f.HTTPListen}
	at := func(field string) string { return confjson.Join(path, field) }

	if len(f.Domains) == 0 {
		return nil, confjson.Errorf(at("domains"), "is required: the names to order certificates for")
	}
	if c.Challenge == "" {
		c.Challenge = ChallengeTLSALPN
	}
	if c.Challenge != ChallengeTLSALPN && c.Challenge != ChallengeHTTP {
		return nil, confjson.Errorf(at("challenge"), "expected %q or %q, got %q", ChallengeTLSALPN, ChallengeHTTP, c.Challenge)
	}
	for i, d := range f.Domains {
		name := strings.ToLower(d)
		if err := checkDomain(name, c.Challenge); err != nil {
			return nil, confjson.Errorf(confjson.Index(at("domains"), i), "%q: %v", d, err)
		}
		if slices.Contains(c.Domains, name) {
			return nil, confjson.Errorf(confjson.Index(at("domains"), i), "%q is listed twice", d)
		}
		c.Domains = append(c.Domains, name)
	}
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			return nil, confjson.Errorf(at("email"), "expected a plain address such as ops@example.com, got %q", c.Email)
		}
	}
	if c.CARootsFile != "" {
		pem, err := os.ReadFile(c.CARootsFile)
		if err != nil {
			return nil, confjson.Errorf(at("ca_roots_file"), "%v", err)
		}
		c.Roots = x509.NewCertPool()
		if !c.Roots.AppendCertsFromPEM(pem) {
			return nil, confjson.Errorf(at("ca_roots_file"), "%s holds no PEM certificate", c.CARootsFile)
		}
	}
	if c.DirectoryURL == "" {
		c.DirectoryURL = acme.LetsEncryptURL
	}
	u, err := url.Parse(c.DirectoryURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, confjson.Errorf(at("directory_url"), "expected an https URL such as %s, got %q", acme.LetsEncryptURL, c.DirectoryURL)
	case u.Scheme == "http" && c.CARootsFile == "":
		return nil, confjson.Errorf(at("directory_url"), "%q is plain http: the account key and certificates would cross the network in the clear (only a private ACME server named with ca_roots_file may be http)", c.DirectoryURL)
	}
	switch {
	case c.HTTPListen != "":
		if err := confjson.HostPort(c.HTTPListen); err != nil {
			return nil, confjson.Errorf(at("http_listen"), "%v", err)
		}
	case c.Challenge == ChallengeHTTP:
		return nil, confjson.Errorf(at("http_listen"), "is required with challenge %q: the CA fetches the challenge over http on port 80 (e.g. \":80\")", ChallengeHTTP)
	}
	if c.RenewBefore, err = confjson.ParseDuration(at("renew_before"), f.RenewBefore, DefaultRenewBefore, minRenewBefore); err != nil {
		return nil, err
	}
	if c.RenewBefore > DefaultRenewBefore {
		return nil, confjson.Errorf(at("renew_before"), "at most %s (autocert renews no earlier), got %s", DefaultRenewBefore, c.RenewBefore)
	}
	return c, nil
}

// checkDomain accepts a lower-case DNS host name of at least two labels
// (RFC 1123 letters, digits and inner hyphens; punycode for others).
func checkDomain(name, challenge string) error {
	if strings.HasPrefix(name, "*.") {
		if challenge == ChallengeHTTP {
			return fmt.Errorf("a wildcard cannot be proven over %s (RFC 8555 §8.3)", ChallengeHTTP)
		}
		return fmt.Errorf("a wildcard cannot be proven over %s (RFC 8737 §3) either; list each name", challenge)
	}
	if net.ParseIP(name) != nil {
		return fmt.Errorf("an IP address, not a DNS name")
	}
	if len(name) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("a public name has at least two labels (api.example.com)")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q: 1 to 63 characters, not starting or ending with '-'", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("label %q: only letters, digits and '-' (write other names in punycode, xn--...)", l)
			}
		}
	}
	return nil
}

// Same reports whether two blocks (either may be nil) say the same thing;
// a running process compares them to tell that a reload needs a restart.
func (c *Config) Same(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	return slices.Equal(c.Domains, o.Domains) && c.Email == o.Email && c.DirectoryURL == o.DirectoryURL &&
		c.CARootsFile == o.CARootsFile && c.Challenge == o.Challenge && c.HTTPListen == o.HTTPListen &&
		c.RenewBefore == o.RenewBefore
}

// CacheNamespace names the directory's part of a cache: certificates and
// the account of one CA are never served for another, so moving from the
// staging directory to production orders anew instead of serving a staging
// certificate until its renewal.
func (c *Config) CacheNamespace() string {
	sum := sha256.Sum256([]byte(c.DirectoryURL))
	return hex.EncodeToString(sum[:6])
}

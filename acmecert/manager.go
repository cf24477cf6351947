package acmecert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Upkeep timing: how often the loop looks at each certificate, and the
// backoff between failed orders (doubling from the first to the last).
// autocert itself keeps a failed order's outcome for a minute, so retrying
// sooner would only repeat its error.
const (
	checkEvery   = time.Minute
	firstBackoff = time.Minute
	maxBackoff   = time.Hour
)

// OrderReleaser is what a cache shared by replicas implements to hear that
// an order it let this process place has ended (storecache.Cache).
type OrderReleaser interface {
	ReleaseOrder(ctx context.Context, domain string)
}

// Options are what the command hands the manager.
type Options struct {
	// Cache keeps certificates and the account key: the store's
	// (storecache) for the server, a directory for the gateway.
	Cache autocert.Cache
	// Logger receives orders, renewals and the CA's problem documents.
	Logger *slog.Logger
}

// Manager serves certificates for cfg.Domains, ordering them from the ACME
// CA as needed.
type Manager struct {
	cfg *Config
	ac  *autocert.Manager
	log *slog.Logger
	rel OrderReleaser

	mu       sync.Mutex
	notAfter map[string]time.Time
	failures map[string]int
}

// New builds the manager; nothing is ordered until a handshake or Run.
func New(cfg *Config, opts Options) (*Manager, error) {
	if opts.Cache == nil {
		return nil, errors.New("acme: no certificate cache")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.Roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}
	}
	m := &Manager{cfg: cfg, log: log, notAfter: map[string]time.Time{}, failures: map[string]int{}}
	m.ac = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       opts.Cache,
		HostPolicy:  autocert.HostWhitelist(cfg.Domains...),
		RenewBefore: cfg.RenewBefore,
		Email:       cfg.Email,
		Client: &acme.Client{
			DirectoryURL: cfg.DirectoryURL,
			UserAgent:    "postern",
			HTTPClient:   &http.Client{Transport: &caTransport{next: tr, challenge: cfg.Challenge, log: log}, Timeout: time.Minute},
		},
	}
	if r, ok := opts.Cache.(OrderReleaser); ok {
		m.rel = r
	}
	return m, nil
}

// TLSConfig is the listener's: certificates from the manager, and the
// acme-tls/1 protocol only when tls-alpn-01 is the challenge.
func (m *Manager) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if m.cfg.Challenge == ChallengeTLSALPN {
		protos = append(protos, acme.ALPNProto)
	}
	return &tls.Config{GetCertificate: m.GetCertificate, NextProtos: protos, MinVersion: tls.VersionTLS12}
}

// GetCertificate is tls.Config.GetCertificate. A name outside domains is
// refused by the host policy before anything is asked of the CA.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.cfg.Challenge != ChallengeTLSALPN && slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return nil, fmt.Errorf("acme: challenge is %s, not %s", m.cfg.Challenge, ChallengeTLSALPN)
	}
	cert, err := m.ac.GetCertificate(hello)
	if m.rel != nil && !slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		m.rel.ReleaseOrder(context.Background(), strings.ToLower(strings.TrimSuffix(hello.ServerName, ".")))
	}
	return cert, err
}

// HTTPHandler serves http_listen: the HTTP-01 challenge, and a redirect to
// https for everything else. The Host's port is dropped first: autocert
// checks the host policy against the whole Host, and a CA (or a client)
// may well send "example.com:80".
func (m *Manager) HTTPHandler() http.Handler {
	h := m.ac.HTTPHandler(nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// Run obtains every domain's certificate now rather than at the first
// handshake, then watches it until ctx ends: a failed order or renewal is
// logged with the CA's problem document and retried with backoff, and the
// expiry the metric reports follows renewals (which autocert performs
// renew_before ahead of the end).
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range m.cfg.Domains {
		wg.Add(1)
		go func() { defer wg.Done(); m.keep(ctx, d) }()
	}
	wg.Wait()
}

func (m *Manager) keep(ctx context.Context, domain string) {
	backoff := firstBackoff
	for {
		wait := checkEvery
		leaf, err := m.obtain(domain)
		switch {
		case err != nil:
			m.failed(domain, err, backoff)
			wait, backoff = backoff, min(2*backoff, maxBackoff)
		default:
			backoff = firstBackoff
			m.served(domain, leaf)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// obtain asks the manager for domain's certificate as a modern client
// would (ECDSA), which orders it when there is none.
func (m *Manager) obtain(domain string) (*x509.Certificate, error) {
	hello := &tls.ClientHelloInfo{
		ServerName:        domain,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
	cert, err := m.GetCertificate(hello)
	if err != nil {
		return nil, err
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

func (m *Manager) served(domain string, leaf *x509.Certificate) {
	m.mu.Lock()
	prev := m.notAfter[domain]
	m.notAfter[domain] = leaf.NotAfter
	m.mu.Unlock()
	if !prev.Equal(leaf.NotAfter) {
		m.log.Info("acme: serving certificate", "domain", domain, "serial", leaf.SerialNumber.Text(16),
			"not_after", leaf.NotAfter, "issuer", leaf.Issuer.CommonName)
	}
}

func (m *Manager) failed(domain string, err error, retryIn time.Duration) {
	m.mu.Lock()
	m.failures[domain]++
	m.mu.Unlock()
	attrs := []any{"domain", domain, "error", err, "retry_in", retryIn}
	var ae *acme.Error
	if errors.As(err, &ae) {
		attrs = append(attrs, problemAttrs(ae))
	}
	m.log.Warn("acme: could not obtain a certificate; will retry", attrs...)
}

// problemAttrs is an ACME problem document (RFC 8555 §6.7) for the log.
func problemAttrs(ae *acme.Error) slog.Attr {
	attrs := []any{"type", ae.ProblemType, "detail", ae.Detail, "status", ae.StatusCode}
	for i, sp := range ae.Subproblems {
		attrs = append(attrs, slog.Group(fmt.Sprintf("subproblem%d", i), "type", sp.Type, "detail", sp.Detail, "identifier", sp.Identifier))
	}
	return slog.Group("problem", attrs...)
}

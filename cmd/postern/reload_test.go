package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/gateway"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/samlsp/samltest"
	"github.com/postern-auth/postern/storage/bolt"
)

func TestRestartChanges(t *testing.T) {
	base := func() *Config {
		return &Config{Addr: "127.0.0.1:4444", DataDir: "data", Issuer: "https://auth.example.com", KeyAlgorithm: "ES256",
			KeyOverlap: 24 * time.Hour, KeyRotate: 90 * 24 * time.Hour, SessionTTL: 8 * time.Hour, Format: "opaque"}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"clients, users, SAML, lifetimes, format, session, proxies reload", func(c *Config) {
			c.Clients = []*clients.Client{{ID: "new"}}
			c.Users = []identity.User{{Username: "carol"}}
			c.SAMLProviders = []samlsp.FileProvider{{MetadataURL: "https://idp.example.com/md"}}
			c.Lifetimes.AccessToken = time.Minute
			c.Format = "jwt"
			c.SessionTTL = time.Hour
			c.Warnings = []string{"w"}
		}, nil},
		{"addr", func(c *Config) { c.Addr = "0.0.0.0:4444" }, []string{"addr"}},
		{"data_dir", func(c *Config) { c.DataDir = "elsewhere" }, []string{"data_dir"}},
		{"store", func(c *Config) { c.Store = "postgres://db/postern" }, []string{"store"}},
		{"issuer", func(c *Config) { c.Issuer = "https://login.example.com" }, []string{"issuer"}},
		{"keys", func(c *Config) {
			c.KeyAlgorithm = "RS256"
			c.KeyOverlap = 48 * time.Hour
			c.KeyReload = time.Minute
			c.KeyRotate = 30 * 24 * time.Hour
		}, []string{"keys.algorithm", "keys.rotation_overlap", "keys.reload_interval", "keys.rotate_after"}},
		{"several, with reloadable ones", func(c *Config) {
			c.Addr = ":1"
			c.Issuer = "https://other.example.com"
			c.Clients = nil
		}, []string{"addr", "issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			if got := restartChanges(base(), next); !slices.Equal(got, tt.want) {
				t.Errorf("restartChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestGatewayRestartChanges(t *testing.T) {
	certA, certB := selfSigned(t, "a"), selfSigned(t, "b")
	tlsWith := func(c tls.Certificate) *tls.Config {
		// A copy of the chain, as a second read of the same files gives.
		return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{bytes.Clone(c.Certificate[0])}, PrivateKey: c.PrivateKey}}}
	}
	base := func() *gateway.FileConfig {
		return &gateway.FileConfig{Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9090", TLS: tlsWith(certA)}
	}
	tests := []struct {
		name   string
		change func(*gateway.FileConfig)
		want   []string
	}{
		{"nothing (certificate files read again)", func(*gateway.FileConfig) {}, nil},
		{"routes and the rest reload", func(c *gateway.FileConfig) {
			c.Gateway.Issuer = "https://auth2.example.com"
			c.Gateway.ClientSecret = "rotated"
		}, nil},
		{"listen", func(c *gateway.FileConfig) { c.Listen = "0.0.0.0:8080" }, []string{"listen"}},
		{"admin_listen", func(c *gateway.FileConfig) { c.AdminListen = "" }, []string{"admin_listen"}},
		{"another certificate", func(c *gateway.FileConfig) { c.TLS = tlsWith(certB) }, []string{"tls"}},
		{"TLS turned off", func(c *gateway.FileConfig) { c.TLS = nil }, []string{"tls"}},
		{"a chain grows", func(c *gateway.FileConfig) {
			c.TLS.Certificates[0].Certificate = append(c.TLS.Certificates[0].Certificate, certB.Certificate[0])
		}, []string{"tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			if got := gatewayRestartChanges(base(), next); !slices.Equal(got, tt.want) {
				t.Errorf("gatewayRestartChanges = %q, want %q", got, tt.want)
			}
		})
	}
	if !sameServedCertificates(nil, nil) || sameServedCertificates(nil, tlsWith(certA)) {
		t.Error("sameServedCertificates with nil configurations")
	}
}

func TestClientChanges(t *testing.T) {
	cs := func(ids ...string) []*clients.Client {
		var out []*clients.Client
		for _, id := range ids {
			out = append(out, &clients.Client{ID: id})
		}
		return out
	}
	added, removed := clientChanges(cs("a", "b", "c"), cs("c", "e", "d", "a"))
	if !slices.Equal(added, []string{"d", "e"}) || !slices.Equal(removed, []string{"b"}) {
		t.Errorf("added %q removed %q", added, removed)
	}
}

// reloadFixture is a serveReloader on a real bbolt store, as serve builds
// it, with the configuration to load next in next.
type reloadFixture struct {
	rl   *serveReloader
	next string
	logs *bytes.Buffer
}

const reloadTestIssuer = "https://auth.example.com"

func newReloadFixture(t *testing.T, config string) *reloadFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "postern.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := keys.NewSecret([]byte("reload-test-secret-0123456789abcdef-xyz"))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(context.Background(), st, sec, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &reloadFixture{next: config, logs: &bytes.Buffer{}}
	load := func() (*Config, error) {
		cfg, err := parseConfig([]byte(f.next), mapEnv(nil))
		if err == nil {
			cfg.DataDir = dir
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer = reloadTestIssuer
	ctx, cancel := context.WithCancel(context.Background())
	base := newServeBase(ctx, st, km, sec, slog.New(slog.NewTextHandler(f.logs, nil)), nil)
	inst, err := base.build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.rl = &serveReloader{base: base, load: load, defaultIssuer: reloadTestIssuer, handler: newSwapHandler(inst.srv), cur: inst}
	t.Cleanup(func() { cancel(); f.rl.close() })
	return f
}

func (f *reloadFixture) do(t *testing.T, method, path string, form url.Values, user, pass string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, reloadTestIssuer+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	f.rl.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (f *reloadFixture) token(t *testing.T, client string) int {
	t.Helper()
	code, _ := f.do(t, http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, client, client+"-secret-0123456789")
	return code
}

var healthzCount = regexp.MustCompile(`(?m)^postern_http_requests_total\{code="200",endpoint="healthz"\} (\d+)$`)

func (f *reloadFixture) healthzCount(t *testing.T) int {
	t.Helper()
	// What the admin listener serves: the registry every configuration shares.
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(f.rl.base.metrics, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := healthzCount.FindStringSubmatch(rec.Body.String())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func ccClient(id string) string {
	return fmt.Sprintf(`{"client_id": %q, "client_secret": "%s-secret-0123456789", "grant_types": ["client_credentials"]}`, id, id)
}

func TestServeReloaderSwapsOnlyValidConfigurations(t *testing.T) {
	f := newReloadFixture(t, `{"clients": [`+ccClient("a")+`]}`)
	if f.token(t, "a") != http.StatusOK || f.token(t, "b") != http.StatusUnauthorized {
		t.Fatal("before the reload: want a in, b out")
	}
	for range 3 {
		f.do(t, http.MethodGet, "/healthz", nil, "", "")
	}
	before := f.healthzCount(t)
	if before != 3 {
		t.Fatalf("healthz counter %d, want 3", before)
	}

	f.next = `{"clients": [` + ccClient("b") + `]}`
	if !f.rl.reload() {
		t.Fatalf("valid configuration refused:\n%s", f.logs)
	}
	if f.token(t, "b") != http.StatusOK || f.token(t, "a") != http.StatusUnauthorized {
		t.Fatal("after the reload: want b in, a out")
	}
	if !strings.Contains(f.logs.String(), `msg="configuration reloaded" clients=1 users=0 saml_providers=0 apis=0 clients_added=[b] clients_removed=[a]`) {
		t.Errorf("reload log:\n%s", f.logs)
	}
	f.do(t, http.MethodGet, "/healthz", nil, "", "")
	if got := f.healthzCount(t); got != before+1 {
		t.Errorf("healthz counter after a reload: %d, want %d (carried on)", got, before+1)
	}

	refused := []struct{ config, log string }{
		{`{"clients": [` + ccClient("c") + `], "tokens": {"acess_token_ttl": "1h"}}`, `config: tokens: unknown field \"acess_token_ttl\"`},
		{`{"clients": [` + ccClient("c") + `], "addr": "0.0.0.0:1"}`, `a change to addr requires a restart`},
		{`{"clients": [` + ccClient("c") + `], "issuer": "https://other.example.com", "keys": {"algorithm": "RS256"}}`, `a change to issuer, keys.algorithm requires a restart`},
		{`{"clients": [` + ccClient("c") + `, ` + ccClient("c") + `]}`, `config: clients[1].client_id: \"c\" is already used by clients[0]`},
	}
	for _, r := range refused {
		f.logs.Reset()
		f.next = r.config
		if f.rl.reload() {
			t.Errorf("reloaded %s", r.config)
		}
		if !strings.Contains(f.logs.String(), r.log) || !strings.Contains(f.logs.String(), "still serving the previous") {
			t.Errorf("log for %s: want %q, got:\n%s", r.config, r.log, f.logs)
		}
		if f.token(t, "b") != http.StatusOK || f.token(t, "c") != http.StatusUnauthorized {
			t.Errorf("after refusing %s: the configuration changed", r.config)
		}
	}
	// An explicit issuer equal to the one in use is no change.
	f.next = `{"issuer": "` + reloadTestIssuer + `/", "clients": [` + ccClient("c") + `]}`
	if !f.rl.reload() || f.token(t, "c") != http.StatusOK {
		t.Errorf("reload with the running issuer spelled out refused:\n%s", f.logs)
	}
}

// goroutinesIn counts the goroutines with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// settleGoroutines waits a moment for goroutines just started to be
// running fn (a new one's stack shows its starting closure first), and
// returns how many are.
func settleGoroutines(fn string, want int) int {
	n := goroutinesIn(fn)
	for deadline := time.Now().Add(2 * time.Second); n != want && time.Now().Before(deadline); n = goroutinesIn(fn) {
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// A SAML provider with a metadata URL refreshes it in a goroutine per
// server instance: a reload stops the old one's.
func TestServeReloaderStopsReplacedSAMLRefresh(t *testing.T) {
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	mdSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		w.Write(md)
	}))
	defer mdSrv.Close()
	config := func(id string) string {
		return `{"clients": [` + ccClient("a") + `], "saml_providers": [{"id": "` + id + `", "metadata_url": "` + mdSrv.URL + `/md"}]}`
	}
	const run = "(*MetadataSource).Run"
	before := goroutinesIn(run)
	f := newReloadFixture(t, config("corp"))
	if n := settleGoroutines(run, before+1) - before; n != 1 {
		t.Fatalf("%d metadata refresh goroutines, want 1", n)
	}
	for i := range 5 {
		f.next = config(fmt.Sprintf("corp%d", i))
		if !f.rl.reload() {
			t.Fatalf("reload %d refused:\n%s", i, f.logs)
		}
		if n := settleGoroutines(run, before+1) - before; n != 1 {
			t.Fatalf("after reload %d: %d metadata refresh goroutines, want 1", i, n)
		}
	}
	if code, body := f.do(t, http.MethodGet, "/saml/corp4/metadata", nil, "", ""); code != http.StatusOK {
		t.Errorf("new provider's metadata: %d %s", code, body)
	}
	if code, _ := f.do(t, http.MethodGet, "/saml/corp/metadata", nil, "", ""); code != http.StatusNotFound {
		t.Errorf("removed provider's metadata: %d, want 404", code)
	}
	// A refused configuration starts nothing.
	f.next = config("bad id!")
	if f.rl.reload() {
		t.Fatal("invalid provider id accepted")
	}
	if n := settleGoroutines(run, before+1) - before; n != 1 {
		t.Errorf("after a refused reload: %d metadata refresh goroutines, want 1", n)
	}
	f.rl.close()
	if n := goroutinesIn(run) - before; n != 0 {
		t.Errorf("after close: %d metadata refresh goroutines, want 0", n)
	}
}

// A request already inside the old handler finishes there; the next one
// goes to the new handler.
func TestSwapHandlerInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "old")
	})
	h := newSwapHandler(old)
	slow := make(chan string)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		slow <- rec.Body.String()
	}()
	<-entered
	if prev := h.swap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })); prev == nil {
		t.Fatal("swap returned no previous handler")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Body.String() != "new" {
		t.Errorf("request after the swap served by %q", rec.Body.String())
	}
	close(release)
	if got := <-slow; got != "old" {
		t.Errorf("in-flight request finished on %q, want old", got)
	}
}

// Package acmetest runs Pebble, Let's Encrypt's ACME test server, with its
// challenge validation on, for tests of acmecert and of the binary. Pebble
// resolves every name to 127.0.0.1 through pebble-challtestsrv, and
// validates http-01 and tls-alpn-01 on the ports the test listens on.
//
// The binaries come from `go install github.com/letsencrypt/pebble/v2/cmd/
// pebble@v2.10.3` (and pebble-challtestsrv), as .ci/run does; outside CI a
// test without them skips, in CI it fails.
package acmetest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options say where Pebble validates and how long its certificates live.
type Options struct {
	HTTPPort int           // where it fetches http-01 tokens (the test's http_listen)
	TLSPort  int           // where it performs tls-alpn-01 (the test's TLS listener)
	Validity time.Duration // of issued certificates; 0 for Pebble's 90 days
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory (https on 127.0.0.1).
	DirectoryURL string
	// CARootsFile holds the CA that signed Pebble's own HTTPS certificate:
	// what tls.acme.ca_roots_file names.
	CARootsFile string
	// Roots holds Pebble's issuing root: what a client of a server with a
	// Pebble certificate trusts.
	Roots *x509.CertPool

	mu  sync.Mutex
	log strings.Builder
}

// Binary finds a Pebble program (pebble, pebble-challtestsrv) on PATH or in
// GOPATH/bin, skipping the test outside CI when it is missing.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := name + " not found: go install github.com/letsencrypt/pebble/v2/cmd/" + name + "@v2.10.3 (.ci/run does)"
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// FreePort is a loopback TCP port free now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	// Below the kernel's ephemeral range (32768 and up on Linux), so that
	// the ":0" listeners other tests open in parallel cannot take the port
	// between this check and the process that binds it (seen once in CI).
	for range 100 {
		port := 10000 + mrand.IntN(22000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs pebble-challtestsrv (DNS only) and Pebble until the test ends.
func Start(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	pebbleBin, challBin := Binary(tb, "pebble"), Binary(tb, "pebble-challtestsrv")
	dir := tb.TempDir()
	p := &Pebble{CARootsFile: filepath.Join(dir, "ca.pem")}

	dns := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	run(tb, p, "challtestsrv", challBin, nil, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", dns, "-management", fmt.Sprintf("127.0.0.1:%d", FreePort(tb)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")

	caPool, certFile, keyFile := directoryCert(tb, dir, p.CARootsFile)
	listen := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	mgmt := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	profile := map[string]any{"description": "test"}
	if opts.Validity > 0 {
		profile["validityPeriod"] = int(opts.Validity / time.Second)
	}
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": opts.HTTPPort, "tlsPort": opts.TLSPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter":   map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": profile},
	}})
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		tb.Fatal(err)
	}
	// No sleeps before validation (the test is bounded in time), every
	// nonce accepted, and no reuse of earlier authorizations: every order
	// proves control again, over the challenge under test.
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	run(tb, p, "pebble", pebbleBin, env, "-config", confFile, "-dnsserver", dns)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	p.DirectoryURL = "https://" + listen + "/dir"
	var root []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := get(client, p.DirectoryURL)
		if err == nil {
			if root, err = get(client, "https://"+mgmt+"/roots/0"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebble not ready: %v\n%s", err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(root) {
		tb.Fatalf("pebble root: no certificate in %q", root)
	}
	return p
}

func get(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// run starts a helper that lives until the test ends; its output goes to
// p's log.
func run(tb testing.TB, p *Pebble, name, bin string, env []string, args ...string) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(name + ": " + sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, p.Log())
		}
	})
}

// Log is what Pebble and challtestsrv printed so far.
func (p *Pebble) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Issued counts the certificates Pebble issued: each finished order logs
// one "Issued certificate serial" line.
func (p *Pebble) Issued() int { return strings.Count(p.Log(), "Issued certificate serial") }

// Orders counts the orders placed (finished or not).
func (p *Pebble) Orders() int { return strings.Count(p.Log(), "Added order") }

// directoryCert makes the CA (written to caFile) and leaf certificate of
// Pebble's own HTTPS listener.
func directoryCert(tb testing.TB, dir, caFile string) (pool *x509.CertPool, certFile, keyFile string) {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest directory CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "dir-cert.pem"), filepath.Join(dir, "dir-key.pem")
	for _, f := range []struct {
		path string
		typ  string
		der  []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile
}

// Served connects to addr asking for name, verifies the chain against
// Pebble's root and the name, and returns the leaf.
func (p *Pebble) Served(ctx context.Context, addr, name string) (*x509.Certificate, error) {
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: p.Roots, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

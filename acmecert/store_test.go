package acmecert_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/acmecert"
	"github.com/postern-auth/postern/acmecert/acmetest"
	"github.com/postern-auth/postern/acmecert/storecache"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
	"github.com/postern-auth/postern/storage/postgres"
)

func testSealer(t *testing.T) *keys.BlobSealer {
	t.Helper()
	secret, err := keys.NewSecret([]byte("an acme test secret of at least 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.NewBlobSealer(secret, keys.PurposeACME)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runManager(t *testing.T, m *acmecert.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func servedSerial(t *testing.T, peb *acmetest.Pebble, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leaf, err := peb.Served(ctx, addr, testDomain)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	return leaf.SerialNumber.Text(16)
}

// On bbolt a restart finds the certificate (and account) in the store,
// sealed, and orders nothing.
func TestRestartReusesCertificate(t *testing.T) {
	tlsPort := acmetest.FreePort(t)
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: acmetest.FreePort(t)})
	path := filepath.Join(t.TempDir(), "postern.db")
	open := func() *bolt.Store {
		st, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	st := open()
	s := startSite(t, peb, tlsPort, 0, acmecert.ChallengeTLSALPN, storecache.New(st, testSealer(t), "ns", "first", time.Hour))
	first := servedSerial(t, peb, s.tlsAddr)
	s.stop()
	sealed, err := st.GetBlob(t.Context(), "acme/ns/"+testDomain)
	if err != nil {
		t.Fatalf("certificate not in the store: %v", err)
	}
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) || bytes.Contains(sealed, []byte("CERTIFICATE")) {
		t.Errorf("the store holds the certificate and key in the clear")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open()
	defer st.Close()
	s = startSite(t, peb, tlsPort, 0, acmecert.ChallengeTLSALPN, storecache.New(st, testSealer(t), "ns", "second", time.Hour))
	if again := servedSerial(t, peb, s.tlsAddr); again != first {
		t.Errorf("after a restart the server serves serial %s, before it %s", again, first)
	}
	if o := peb.Orders(); o != 1 {
		t.Errorf("pebble got %d orders, want 1 (the restart must reuse the certificate)", o)
	}
}

// Two replicas on one PostgreSQL database: one orders each certificate,
// the other waits and serves the same one. Pebble validates tls-alpn-01 at
// the first replica only, whichever placed the order: the challenge
// certificate is in the shared store too.
func TestReplicasShareOneOrder(t *testing.T) {
	dsn := pgSchema(t)
	tlsPort := acmetest.FreePort(t)
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: acmetest.FreePort(t)})
	var sites []*site
	for i, port := range []int{tlsPort, acmetest.FreePort(t)} {
		st, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		sites = append(sites, startSite(t, peb, port, 0, acmecert.ChallengeTLSALPN,
			storecache.New(st, testSealer(t), "ns", "replica-"+string(rune('a'+i)), time.Hour)))
	}
	var wg sync.WaitGroup
	for _, s := range sites {
		wg.Add(1)
		go func() { defer wg.Done(); runManager(t, s.m) }()
	}
	wg.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica a:\n%s\nreplica b:\n%s", sites[0].logs, sites[1].logs)
		}
	})
	a, b := servedSerial(t, peb, sites[0].tlsAddr), servedSerial(t, peb, sites[1].tlsAddr)
	if a != b {
		t.Errorf("replicas serve different certificates: %s and %s", a, b)
	}
	// Both replicas upkeep both domains; one order each.
	for _, d := range []string{"api.postern.test", testDomain} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		for _, s := range sites {
			if _, err := peb.Served(ctx, s.tlsAddr, d); err != nil {
				t.Errorf("%s at %s: %v", d, s.tlsAddr, err)
			}
		}
		cancel()
	}
	if o, n := peb.Orders(), peb.Issued(); o != 2 || n != 2 {
		t.Errorf("pebble: %d orders, %d certificates for 2 domains and 2 replicas; want 2 and 2", o, n)
	}
}

// A certificate near its end is renewed renew_before ahead, while the
// current one is served.
func TestRenewal(t *testing.T) {
	tlsPort := acmetest.FreePort(t)
	// 75s certificates renewed a minute ahead: due 15s after issue.
	peb := acmetest.Start(t, acmetest.Options{TLSPort: tlsPort, HTTPPort: acmetest.FreePort(t), Validity: 75 * time.Second})
	st, err := bolt.Open(filepath.Join(t.TempDir(), "postern.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := startSiteRenew(t, peb, tlsPort, "1m", storecache.New(st, testSealer(t), "ns", "one", time.Minute))
	first := servedSerial(t, peb, s.tlsAddr)
	deadline := time.Now().Add(50 * time.Second)
	for servedSerial(t, peb, s.tlsAddr) == first {
		if time.Now().After(deadline) {
			t.Fatalf("certificate %s not renewed within 50s (pebble issued %d)\n%s", first, peb.Issued(), s.logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := peb.Issued(); n != 2 {
		t.Errorf("pebble issued %d certificates, want 2 (one renewal)", n)
	}
}

// pgSchema is a fresh schema on the test database (see storage/postgres).
func pgSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("POSTERN_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("POSTERN_TEST_POSTGRES_DSN is not set, but CI is")
		}
		t.Skip("set POSTERN_TEST_POSTGRES_DSN to run the replica test")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "acme_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE SCHEMA " + name)
	t.Cleanup(func() { exec("DROP SCHEMA " + name + " CASCADE") })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + name
}

var _ storage.Store = (*bolt.Store)(nil)

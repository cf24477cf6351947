package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/storagetest"
)

func TestConformance(t *testing.T) {
	testDSN(t) // skip once, not per sub-test
	storagetest.RunTests(t, func(t *testing.T) storage.Store { return openTest(t, freshSchema(t), Options{}) })
}

// testDSN is the database the tests may create schemas in. Outside CI the
// tests skip without one; in CI (.ci/run starts a cluster) they must run.
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("POSTERN_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("POSTERN_TEST_POSTGRES_DSN is not set, but CI is: .ci/run should have started PostgreSQL and set it")
		}
		tb.Skip("PostgreSQL tests skipped: set POSTERN_TEST_POSTGRES_DSN to a database they may create schemas in (.ci/run starts a throwaway cluster)")
	}
	return dsn
}

// freshSchema creates an empty schema, drops it when the test ends, and
// returns a DSN whose search_path is that schema: every test gets its own
// tables in one database, which is quicker than a database each.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	dsn := testDSN(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	adminExec(tb, dsn, `CREATE SCHEMA `+name)
	tb.Cleanup(func() { adminExec(tb, dsn, `DROP SCHEMA `+name+` CASCADE`) })
	return withParam(tb, dsn, "search_path", name)
}

func adminExec(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// withParam sets a connection parameter in a URL or key=value DSN.
func withParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("parse DSN: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func openTest(tb testing.TB, dsn string, opts Options) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func testToken(kind storage.Kind, sig string, exp time.Time) storage.Token {
	return storage.Token{
		Kind: kind, Signature: sig, RequestID: "req-" + sig, ClientID: "client-1", Subject: "alice",
		CreatedAt: exp.Add(-time.Hour), ExpiresAt: exp, Active: true, Data: []byte(`{"x":1}`),
	}
}

// countingHandler counts log records whose message is msg.
type countingHandler struct {
	slog.Handler
	msg string
	mu  sync.Mutex
	n   int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func TestMigrationsRunOnceUnderConcurrentOpens(t *testing.T) {
	dsn := freshSchema(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{Handler: slog.DiscardHandler, msg: "applied schema migration"}
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn, Options{Logger: slog.New(h), SweepInterval: -1})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if got := h.count(); got != len(ms) {
		t.Errorf("%d concurrent Opens applied %d migrations, want each of the %d once", n, got, len(ms))
	}
	var rows int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) {
		t.Errorf("schema_migrations holds %d rows, want %d", rows, len(ms))
	}
	// Every store works on the same tables.
	tk := testToken(storage.AccessToken, "shared", time.Now().Add(time.Hour))
	if err := stores[1].CreateToken(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[3].GetToken(t.Context(), tk.Kind, tk.Signature); err != nil {
		t.Errorf("token created through one pool, read through another: %v", err)
	}
	applied, err := Migrate(t.Context(), dsn, Options{})
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate on an up-to-date schema = %v, %v; want nothing applied", applied, err)
	}
}

func TestMigrateReportsApplied(t *testing.T) {
	dsn := freshSchema(t)
	applied, err := Migrate(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0] != "0001_init" {
		t.Errorf("Migrate on an empty schema applied %v, want 0001_init first", applied)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dsn := freshSchema(t)
	openTest(t, dsn, Options{SweepInterval: -1}).Close()
	adminExec(t, withParam(t, testDSN(t), "search_path", searchPath(t, dsn)),
		`INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')`)
	_, err := Open(t.Context(), dsn, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this postern") {
		t.Fatalf("Open on a schema from a newer postern: %v, want a refusal", err)
	}
}

func searchPath(tb testing.TB, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Query().Get("search_path")
}

func TestMissingSchemaIsExplained(t *testing.T) {
	dsn := withParam(t, testDSN(t), "search_path", "no_such_schema_here")
	_, err := Open(t.Context(), dsn, Options{})
	if err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Fatalf("Open with a search_path that does not exist: %v, want an error naming search_path", err)
	}
}

// TestRedeemRaceAcrossPools is two replicas redeeming one refresh token:
// two stores with pools of their own, many attempts through each.
func TestRedeemRaceAcrossPools(t *testing.T) {
	dsn := freshSchema(t)
	a := openTest(t, dsn, Options{SweepInterval: -1})
	defer a.Close()
	b := openTest(t, dsn, Options{SweepInterval: -1})
	defer b.Close()
	exp := time.Now().Add(time.Hour)
	for round := range 5 {
		rt := testToken(storage.RefreshToken, fmt.Sprintf("rt-%d", round), exp)
		if err := a.CreateToken(t.Context(), rt); err != nil {
			t.Fatal(err)
		}
		const n = 40
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			s := a
			if i%2 == 1 {
				s = b
			}
			next := testToken(storage.RefreshToken, fmt.Sprintf("rt-%d-next-%d", round, i), exp)
			next.RequestID = rt.RequestID
			wg.Go(func() {
				<-start
				_, errs[i] = s.Redeem(t.Context(), rt.Kind, rt.Signature, []storage.Token{next}, nil)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrInactive):
				t.Errorf("round %d redemption %d: %v, want nil or ErrInactive", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d redemptions succeeded, want exactly 1", round, wins)
		}
		toks, err := b.GrantTokens(t.Context(), rt.RequestID)
		if err != nil || len(toks) != 2 {
			t.Fatalf("round %d: grant holds %d tokens (%v), want the used one and one successor", round, len(toks), err)
		}
	}
}

func TestSweeperOneReplicaAtATime(t *testing.T) {
	dsn := freshSchema(t)
	s := openTest(t, dsn, Options{SweepInterval: -1})
	defer s.Close()
	old := time.Now().Add(-time.Hour)
	for i := range 3 {
		if err := s.CreateToken(t.Context(), testToken(storage.AccessToken, fmt.Sprintf("old-%d", i), old)); err != nil {
			t.Fatal(err)
		}
	}
	// Another replica is sweeping: it holds the lock.
	other, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, s.sweepLock); err != nil {
		t.Fatal(err)
	}
	n, swept, err := s.sweepOnce(t.Context())
	if err != nil || swept || n != 0 {
		t.Fatalf("sweep while another replica holds the lock = %d, %v, %v; want it skipped", n, swept, err)
	}
	if _, err := other.Exec(t.Context(), `SELECT pg_advisory_unlock($1)`, s.sweepLock); err != nil {
		t.Fatal(err)
	}
	n, swept, err = s.sweepOnce(t.Context())
	if err != nil || !swept || n != 3 {
		t.Fatalf("sweep with the lock free = %d, %v, %v; want 3 removed", n, swept, err)
	}
	// The lock went back with the connection.
	var free bool
	if err := other.QueryRow(t.Context(), `SELECT pg_try_advisory_lock($1)`, s.sweepLock).Scan(&free); err != nil || !free {
		t.Fatalf("sweep lock still held after the sweep (%v)", err)
	}
}

func TestSweeperRuns(t *testing.T) {
	dsn := freshSchema(t)
	s := openTest(t, dsn, Options{SweepInterval: 20 * time.Millisecond})
	defer s.Close()
	if err := s.CreateToken(t.Context(), testToken(storage.AccessToken, "soon", time.Now().Add(50*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM tokens`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not remove an expired token within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxy stands between a store and the database so a test can take the
// database away: refuse connections, or accept and never answer.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	hang   bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.start("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			hang := p.hang
			p.mu.Unlock()
			if hang {
				continue // accepted, never answered
			}
			go p.pipe(c)
		}
	}()
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// stop closes the listener and every connection: the database is gone.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) setHang(h bool) {
	p.mu.Lock()
	p.hang = h
	p.mu.Unlock()
}

func proxied(t *testing.T, dsn string) (*proxy, string) {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the proxy tests need a postgres:// URL DSN with host:port, got %q", dsn)
	}
	p := newProxy(t, u.Host)
	u.Host = p.addr
	return p, u.String()
}

// TestUnavailable takes the database away under a running store: calls
// fail within the time bound with ErrUnavailable, and work again once the
// database is back, without reopening the store.
func TestUnavailable(t *testing.T) {
	p, dsn := proxied(t, freshSchema(t))
	const bound = 500 * time.Millisecond
	s := openTest(t, dsn, Options{SweepInterval: -1, Timeout: bound})
	defer s.Close()
	tk := testToken(storage.AccessToken, "before", time.Now().Add(time.Hour))
	if err := s.CreateToken(t.Context(), tk); err != nil {
		t.Fatal(err)
	}

	check := func(what string) {
		t.Helper()
		start := time.Now()
		_, err := s.GetToken(t.Context(), tk.Kind, tk.Signature)
		took := time.Since(start)
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s: GetToken = %v, want ErrUnavailable", what, err)
		}
		if took > bound+time.Second {
			t.Errorf("%s: GetToken took %v, want about the %v bound", what, took, bound)
		}
		start = time.Now()
		_, err = s.Redeem(t.Context(), storage.RefreshToken, "x", nil, nil)
		if !errors.Is(err, storage.ErrUnavailable) || time.Since(start) > bound+time.Second {
			t.Errorf("%s: Redeem = %v after %v, want ErrUnavailable within the bound", what, err, time.Since(start))
		}
	}

	addr := p.addr
	p.stop() // connections reset, new ones refused
	check("database down")
	p.start(addr)
	p.setHang(true) // connections accepted, never answered
	check("database hanging")
	p.stop()
	p.setHang(false)
	p.start(addr)

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.GetToken(t.Context(), tk.Kind, tk.Signature)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 10s of the database returning: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenUnavailable(t *testing.T) {
	testDSN(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	_, err = Open(t.Context(), "postgres://postern:s3cret-pa55@"+addr+"/postern?sslmode=disable", Options{Timeout: time.Second})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open on a closed port: %v, want ErrUnavailable", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret-pa55") {
		t.Errorf("error shows the password: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open on a closed port took %v", took)
	}
}

func TestCallerCancelIsNotUnavailable(t *testing.T) {
	s := openTest(t, freshSchema(t), Options{SweepInterval: -1})
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetToken(ctx, storage.AccessToken, "x")
	if err == nil || errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("GetToken with a cancelled context = %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func BenchmarkCreateTokenParallel(b *testing.B) {
	s := openTest(b, freshSchema(b), Options{SweepInterval: -1})
	defer s.Close()
	exp := time.Now().Add(time.Hour)
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			next++
			i := next
			mu.Unlock()
			if err := s.CreateToken(context.Background(), testToken(storage.AccessToken, fmt.Sprint(i), exp)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetToken(b *testing.B) {
	s := openTest(b, freshSchema(b), Options{SweepInterval: -1})
	defer s.Close()
	tk := testToken(storage.AccessToken, "bench", time.Now().Add(time.Hour))
	if err := s.CreateToken(context.Background(), tk); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetToken(context.Background(), tk.Kind, tk.Signature); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestBadDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:hunter2-secret@h:notaport/db",
		"postgres://u:hunter2-secret@h/db?sslmode=bogus",
		"host=h password=hunter2-secret port=abc",
	} {
		_, err := Open(t.Context(), dsn, Options{})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(bad DSN) = %v, want an error without the password", err)
		}
	}
}

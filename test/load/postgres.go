package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL scenarios run the same load as cc-token and introspect
// against two `postern serve` replicas sharing one database, workers split
// between them; their baselines are the single bbolt server's scenarios,
// measured in the same run. They need a database (-postgres, or
// POSTERN_TEST_POSTGRES_DSN as .ci/run exports) and are skipped without.

// pgSchema creates a fresh schema for one scenario and returns the DSN that
// selects it, and a function that drops it again.
func pgSchema(ctx context.Context, dsn string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "load_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	drop := func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
	}
	return u.String(), drop, nil
}

// startReplicas runs two postern servers on one schema.
func (r *runner) startReplicas(ctx context.Context, name, dataDir string) ([]*proc, func(), error) {
	if r.opts.postgres == "" {
		return nil, nil, errNoPostgres
	}
	dsn, drop, err := pgSchema(ctx, r.opts.postgres)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := r.posternConfig("opaque")
	if err != nil {
		drop()
		return nil, nil, err
	}
	cfgPath := filepath.Join(dataDir, "postern.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		drop()
		return nil, nil, err
	}
	var procs []*proc
	for i := range 2 {
		args := []string{"serve", "--config", cfgPath, "--addr", "127.0.0.1:0", "--store", dsn,
			"--data", filepath.Join(dataDir, fmt.Sprintf("replica-%d", i))}
		if r.opts.profileDir != "" && i == 0 {
			// Replica 1 is the measured process (RSS, profile).
			args = append(args, "--pprof", "127.0.0.1:0")
		}
		p, err := startProc(ctx, fmt.Sprintf("postern serve (%s, replica %d)", name, i+1), r.postern, args, []string{"POSTERN_SECRET=" + loadSecret})
		if err != nil {
			for _, q := range procs {
				q.kill()
			}
			drop()
			return nil, nil, err
		}
		procs = append(procs, p)
	}
	return procs, drop, nil
}

var errNoPostgres = fmt.Errorf("no PostgreSQL: pass -postgres DSN or set POSTERN_TEST_POSTGRES_DSN")

// startPostgresScenario starts pg-cc-token or pg-introspect: replica 1 is
// the process whose RSS is reported, replica 2 a helper; worker i talks to
// replica i%2, as a round-robin load balancer would send it.
func (r *runner) startPostgresScenario(ctx context.Context, name, dataDir string) (*target, error) {
	procs, drop, err := r.startReplicas(ctx, name, dataDir)
	if err != nil {
		return nil, err
	}
	t := &target{server: procs[0], others: procs[1:], cleanup: drop,
		note: "two replicas on one PostgreSQL database, workers split between them; RSS of replica 1"}
	switch name {
	case "pg-cc-token":
		t.newWorker = func(ctx context.Context, c *http.Client, id int) (*worker, error) {
			base := procs[id%2].url
			return formWorker(base+"/oauth2/token", r.serviceAuth(), "grant_type=client_credentials&scope=read", wantBody(`"access_token"`))(ctx, c, id)
		}
	case "pg-introspect":
		// Issued by replica 1, introspected on both.
		token, err := r.ccToken(ctx, procs[0].url)
		if err != nil {
			for _, p := range procs {
				p.kill()
			}
			drop()
			return nil, err
		}
		body := url.Values{"token": {token}}.Encode()
		t.newWorker = func(ctx context.Context, c *http.Client, id int) (*worker, error) {
			return formWorker(procs[id%2].url+"/oauth2/introspect", r.serviceAuth(), body, wantBody(`"active":true`))(ctx, c, id)
		}
	}
	return t, nil
}

package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations are files NNNN_name.sql, applied in order, each in a
// transaction of its own together with its row in schema_migrations. A
// released migration is never edited: a change is a new file. A migration
// that cannot run in a transaction (CREATE INDEX CONCURRENTLY) needs this
// runner taught first.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string // file name without .sql
	sql     string
}

// migrations reads the embedded files; versions must run 1, 2, 3... so that
// a gap (a lost file) is caught here rather than in a database.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var ms []migration
	for i, p := range names {
		base := strings.TrimSuffix(path.Base(p), ".sql")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %04d", p, i+1)
		}
		b, err := migrationFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)`

// migrate brings the schema up to date under an advisory lock, so replicas
// starting together migrate once: the others wait, then find nothing to do.
// It returns the schema it worked in and the migrations it applied. A
// database migrated by a newer postern is refused rather than misused.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (schema string, applied []string, err error) {
	ms, err := migrations()
	if err != nil {
		return "", nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", nil, classify(ctx, err)
	}
	defer conn.Release()

	var cur *string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
		return "", nil, classify(ctx, err)
	}
	if cur == nil {
		return "", nil, errors.New("no schema of the search_path exists: create it, or fix search_path in the DSN")
	}
	schema = *cur

	// Migrations may outlast the statement timeout of ordinary calls, and
	// so may the wait for another replica's. RESET restores the session's
	// value before the connection returns to the pool.
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return "", nil, classify(ctx, err)
	}
	key := lockKey("migrate", schema)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return "", nil, classify(ctx, err)
	}
	if !got {
		log.Info("another postern is migrating the schema; waiting for it", "schema", schema)
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
			return "", nil, fmt.Errorf("wait for the migration lock: %w", classify(ctx, err))
		}
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		defer cancel()
		_, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key)
		if uerr == nil {
			_, uerr = conn.Exec(uctx, `RESET statement_timeout`)
		}
		if uerr != nil {
			// Closing the connection releases the lock on the server.
			_ = conn.Conn().Close(uctx)
		}
	}()

	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return "", nil, fmt.Errorf("create schema_migrations: %w", classify(ctx, err))
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return "", nil, classify(ctx, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return "", nil, classify(ctx, err)
	}
	for _, v := range versions {
		if int(v) > len(ms) {
			return "", nil, fmt.Errorf("schema %s is at version %d, newer than this postern knows (%d): upgrade postern", schema, v, len(ms))
		}
		done[int(v)] = true
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: the simple protocol, which runs a file of
			// several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return "", applied, fmt.Errorf("migration %s: %w", m.name, classify(ctx, err))
		}
		applied = append(applied, m.name)
		log.Info("applied schema migration", "schema", schema, "migration", m.name, "took", time.Since(start).Round(time.Millisecond))
	}
	return schema, applied, nil
}

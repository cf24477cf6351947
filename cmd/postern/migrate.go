package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern-auth/postern/storage/postgres"
)

// runMigrate applies pending PostgreSQL schema migrations and exits, for
// deployments that migrate in a release step rather than at the first
// replica's start (which also migrates, under the same lock). bbolt needs
// no such step: its file is upgraded when it is opened.
func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configPath, store, logFormat string
	fs.StringVar(&configPath, "config", "", "configuration `file` (JSON) whose store to migrate")
	fs.StringVar(&store, "store", "", "PostgreSQL `URL` postgres://... (overrides config store)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "postern migrate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := newLogger(stderr, logFormat, "info")
	if err != nil {
		fmt.Fprintln(stderr, "postern migrate:", err)
		return exitUsage
	}
	dsn, err := migrateTarget(configPath, store)
	if err != nil {
		fmt.Fprintln(stderr, "postern migrate:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	applied, err := postgres.Migrate(ctx, dsn, postgres.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "postern migrate:", err)
		return exitError
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(stdout, "applied", name)
	}
	return exitOK
}

// migrateTarget is --store, else the config's store; a configuration on
// bbolt has nothing to migrate.
func migrateTarget(configPath, store string) (string, error) {
	if store != "" {
		if err := validateStore(store); err != nil {
			return "", fmt.Errorf("--store: %w", err)
		}
		return store, nil
	}
	if configPath == "" {
		return "", errors.New("--config or --store is required")
	}
	cfg, err := loadConfig(configPath, os.Getenv)
	if err != nil {
		return "", err
	}
	if cfg.Store == "" {
		return "", fmt.Errorf("%s uses the bbolt store in its data directory, which upgrades itself when opened; migrate is for a PostgreSQL store", configPath)
	}
	return cfg.Store, nil
}

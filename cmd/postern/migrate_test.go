package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStoreConfig(t *testing.T) {
	env := mapEnv(map[string]string{"PG_DSN": "postgres://postern:hunter2-secret@db.internal:5432/postern?sslmode=require"})
	cfg, err := parseConfig([]byte(`{"store": "${PG_DSN}", "keys": {"reload_interval": "5s"}}`), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != "postgres://postern:hunter2-secret@db.internal:5432/postern?sslmode=require" || cfg.KeyReload != 5*time.Second {
		t.Errorf("store %q, key reload %v", cfg.Store, cfg.KeyReload)
	}
	cfg, err = parseConfig([]byte(`{}`), env)
	if err != nil || cfg.Store != "" {
		t.Errorf("default store = %q, %v; want bbolt (empty)", cfg.Store, err)
	}

	for _, c := range []struct{ json, want string }{
		{`{"store": "mysql://u:hunter2-secret@h/d"}`, "store: expected a postgres://"},
		{`{"store": "hunter2-secret"}`, "store: expected a postgres://"},
		{`{"store": "postgres://u:hunter2-secret@/d"}`, "store: the postgres URL names no host"},
		{`{"store": 5}`, "store"},
		{`{"keys": {"reload_interval": "10ms"}}`, "keys.reload_interval: must be at least 1s"},
	} {
		_, err := parseConfig([]byte(c.json), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.json, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", c.json, err)
		}
	}
	// A host in the query (a unix socket directory) is a host too.
	if _, err := parseConfig([]byte(`{"store": "postgresql:///postern?host=/run/postgresql"}`), env); err != nil {
		t.Errorf("socket DSN: %v", err)
	}
}

func TestStoreFlagWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.json")
	if err := os.WriteFile(path, []byte(`{"store": "postgres://a@file-host/db"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig(&serveFlags{config: path, store: "postgres://a@flag-host/db"})
	if err != nil || cfg.Store != "postgres://a@flag-host/db" {
		t.Errorf("--store over config: %q, %v", cfg.Store, err)
	}
	_, err = loadServeConfig(&serveFlags{config: path, store: "redis://x:hunter2@h"})
	if err == nil || !strings.HasPrefix(err.Error(), "--store:") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad --store: %v", err)
	}
}

func TestSharedStoreNeedsSharedSecret(t *testing.T) {
	t.Setenv("POSTERN_SECRET", "")
	cfg := &Config{Store: "postgres://h/db"}
	if err := checkSharedSecret(cfg, ""); err == nil {
		t.Error("a shared store with a per-directory secret was accepted")
	}
	if err := checkSharedSecret(cfg, "/etc/postern/secret"); err != nil {
		t.Errorf("with --secret-file: %v", err)
	}
	if err := checkSharedSecret(&Config{}, ""); err != nil {
		t.Errorf("bbolt without a secret (development): %v", err)
	}
}

func TestMigrateTarget(t *testing.T) {
	dir := t.TempDir()
	bbolt := filepath.Join(dir, "bbolt.json")
	if err := os.WriteFile(bbolt, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runMigrate([]string{"--config", bbolt}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "bbolt") {
		t.Errorf("migrate on a bbolt config: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := runMigrate(nil, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "--config or --store") {
		t.Errorf("migrate without a target: exit %d, stderr %q", code, errOut.String())
	}
	if got, err := migrateTarget(bbolt, "postgres://h/db"); err != nil || got != "postgres://h/db" {
		t.Errorf("--store over a bbolt config: %q, %v", got, err)
	}
}

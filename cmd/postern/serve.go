package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/flows"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/storage/bolt"
)

type serveFlags struct {
	config     string
	addr       string
	issuer     string
	data       string
	secretFile string
	logFormat  string
	logLevel   string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "configuration `file` (JSON)")
	fs.StringVar(&f.addr, "addr", "", "listen address `host:port` (overrides config addr)")
	fs.StringVar(&f.issuer, "issuer", "", "issuer `URL` (overrides config issuer)")
	fs.StringVar(&f.data, "data", "", "data `directory` (overrides config data_dir)")
	fs.StringVar(&f.secretFile, "secret-file", "", "`file` holding the system secret (else POSTERN_SECRET)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

// loadServeConfig applies flags over the file; flags win.
func loadServeConfig(f *serveFlags) (*Config, error) {
	if f.config == "" {
		return nil, errors.New("--config is required")
	}
	cfg, err := loadConfig(f.config, os.Getenv)
	if err != nil {
		return nil, err
	}
	if f.addr != "" {
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return nil, fmt.Errorf("--addr: expected host:port, got %q", f.addr)
		}
		cfg.Addr = f.addr
	}
	if f.issuer != "" {
		iss, err := validateIssuer(f.issuer)
		if err != nil {
			return nil, fmt.Errorf("--issuer: %w", err)
		}
		cfg.Issuer = iss
	}
	if f.data != "" {
		cfg.DataDir = f.data
	}
	return cfg, nil
}

func openStore(dataDir string, log *slog.Logger) (*bolt.Store, error) {
	return bolt.Open(filepath.Join(dataDir, "postern.db"), bolt.Options{Logger: log})
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "postern serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "postern serve:", err)
		return exitUsage
	}
	cfg, err := loadServeConfig(&f)
	if err != nil {
		fmt.Fprintln(stderr, "postern serve:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, f.secretFile, log, stdout); err != nil {
		log.Error("postern stopped", "error", err)
		return exitError
	}
	return exitOK
}

func serve(ctx context.Context, cfg *Config, secretFile string, log *slog.Logger, stdout io.Writer) error {
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	secret, err := keys.LoadSecret(os.Getenv("POSTERN_SECRET"), secretFile, cfg.DataDir, log)
	if err != nil {
		return err
	}
	store, err := openStore(cfg.DataDir, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "error", err)
		}
	}()
	km, err := keys.Open(ctx, store, secret, keys.Options{Algorithm: cfg.KeyAlgorithm, Overlap: cfg.KeyOverlap})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	// With port 0 (tests) the issuer can only be known once we listen.
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + ln.Addr().String()
	}
	srv, err := authz.New(authz.Config{
		Issuer:            cfg.Issuer,
		AccessTokenFormat: cfg.Format,
		Lifetimes:         cfg.Lifetimes,
		Clients:           cfg.Clients,
		SecretHasher:      flows.NewSecretHasher(),
		HMACSecret:        secret.Derive("postern token hmac v1", 32),
		CookieKey:         secret.Derive("postern cookies v1", 64),
		SessionTTL:        cfg.SessionTTL,
		Users:             flows.NewDirectory(cfg.Users, flows.NewThrottle(flows.ThrottleOptions{})),
		Logger:            log,
	}, store, km)
	if err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("postern ready", "addr", ln.Addr().String(), "issuer", cfg.Issuer, "data_dir", cfg.DataDir,
		"clients", len(cfg.Clients), "access_token_format", cfg.Format)
	fmt.Fprintf(stdout, "postern listening on http://%s (issuer %s)\n", ln.Addr(), cfg.Issuer)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

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
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
	"github.com/postern-auth/postern/storage/postgres"
)

type serveFlags struct {
	config      string
	addr        string
	issuer      string
	data        string
	secretFile  string
	logFormat   string
	logLevel    string
	store       string
	pprof       string // serve only: see runServe
	adminListen string // serve only: overrides admin_listen
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "configuration `file` (JSON)")
	fs.StringVar(&f.addr, "addr", "", "listen address `host:port` (overrides config addr)")
	fs.StringVar(&f.issuer, "issuer", "", "issuer `URL` (overrides config issuer)")
	fs.StringVar(&f.data, "data", "", "data `directory` (overrides config data_dir)")
	fs.StringVar(&f.store, "store", "", "PostgreSQL `URL` postgres://... shared by replicas (overrides config store; default bbolt in the data directory)")
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
	if f.adminListen != "" {
		if err := confjson.HostPort(f.adminListen); err != nil {
			return nil, fmt.Errorf("--admin-listen: %w", err)
		}
		cfg.AdminListen = f.adminListen
	}
	if f.issuer != "" {
		iss, err := confjson.Issuer(f.issuer)
		if err != nil {
			return nil, fmt.Errorf("--issuer: %w", err)
		}
		cfg.Issuer = iss
	}
	if f.data != "" {
		cfg.DataDir = f.data
	}
	if f.store != "" {
		if err := validateStore(f.store); err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		cfg.Store = f.store
	}
	return cfg, nil
}

// openStore opens PostgreSQL when the configuration names it, else the
// bbolt file in the data directory. Either is closed with Close.
func openStore(ctx context.Context, cfg *Config, log *slog.Logger) (storage.Store, error) {
	// Revocation events outlive every access token they could concern (a
	// reload may lengthen lifetimes, so never less than a day).
	retention := max(24*time.Hour, cfg.Lifetimes.AccessToken, cfg.Lifetimes.ImplicitAccessToken)
	if cfg.Store != "" {
		return postgres.Open(ctx, cfg.Store, postgres.Options{Logger: log, RevocationRetention: retention})
	}
	return bolt.Open(filepath.Join(cfg.DataDir, "postern.db"), bolt.Options{Logger: log, RevocationRetention: retention})
}

// storeName says where records live, for logs: never the DSN, which may
// hold a password.
func storeName(cfg *Config, store storage.Store) string {
	if s, ok := store.(fmt.Stringer); ok {
		return s.String()
	}
	return "bbolt " + filepath.Join(cfg.DataDir, "postern.db")
}

// checkSharedSecret refuses to run replicas on a shared store with a
// secret generated per data directory: each would seal keys and sign
// tokens with its own, and none could read the others'.
func checkSharedSecret(cfg *Config, secretFile string) error {
	if cfg.Store != "" && os.Getenv("POSTERN_SECRET") == "" && secretFile == "" {
		return errors.New("a shared store needs the same system secret in every process: set POSTERN_SECRET or --secret-file")
	}
	return nil
}

// withSecretHint adds both ways out to a wrong-secret error: the secret the
// store was created with, or, in development, a fresh data directory.
func withSecretHint(err error, cfg *Config) error {
	if !errors.Is(err, keys.ErrWrongSecret) {
		return err
	}
	if cfg.Store != "" {
		return fmt.Errorf("%w. Start with the secret the store was created with (every replica needs the same one)", err)
	}
	return fmt.Errorf("%w. Either start with the secret the data directory %s was created with (POSTERN_SECRET, --secret-file, or neither for the development secret generated there), "+
		"or, for a development setup, move %s aside and start afresh (its tokens and signing keys are lost)", err, cfg.DataDir, cfg.DataDir)
}

// rotateKeys replaces the signing key once it is older than maxAge, checking
// at start and then hourly; the previous key stays published for the
// overlap. Replicas sharing a store rotate once between them.
func rotateKeys(ctx context.Context, store keys.Store, secret keys.Secret, km *keys.Manager, opts keys.Options, maxAge time.Duration, log *slog.Logger) {
	check := func() {
		kid, rotated, err := keys.RotateIfOlder(ctx, store, secret, opts, maxAge)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("scheduled key rotation failed; will retry", "error", err)
			}
		case rotated:
			if err := km.Reload(ctx); err != nil {
				log.Warn("reloading signing keys after rotation failed", "error", err)
			}
			log.Info("rotated the signing key on schedule", "active_key", kid, "rotate_after", maxAge)
		}
	}
	check()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// defaultKeyReload is how often a replica re-reads a shared store's keys
// unless keys.reload_interval says otherwise: a rotation is in use by all
// within this long. One small query per interval per replica.
const defaultKeyReload = 30 * time.Second

// reloadKeys re-reads a shared store's signing keys every interval, so a
// rotation done by any process (postern keys rotate) is used and published
// here too. A failed read keeps the current key set.
func reloadKeys(ctx context.Context, km *keys.Manager, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = defaultKeyReload
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before := km.Active().ID
		rctx, cancel := context.WithTimeout(ctx, every)
		err := km.Reload(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reloading signing keys failed; keeping the current ones", "error", err)
		case err == nil && km.Active().ID != before:
			log.Info("signing key changed in the store", "active_key", km.Active().ID, "previous_key", before)
		}
	}
}

// parseCommand parses a long-running subcommand's flags, refuses stray
// arguments and builds its logger; a code other than exitOK means it has
// already told the user why.
//
// -h / --help prints the command's usage block to stdout and exits 0; a bad
// flag prints the error and the usage block to stderr (exit 2). A nil
// logger means the command is done with the returned code.
func parseCommand(name string, fs *flag.FlagSet, args []string, format, level *string, stdout, stderr io.Writer) (*slog.Logger, int) {
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage:\n%s\nFlags:\n", commandUsage(name))
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fs.Usage = func() {} // printed below, to the stream the case calls for
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return nil, exitOK
		}
		printUsage(stderr)
		return nil, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "postern %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, exitUsage
	}
	log, err := newLogger(stderr, *format, *level)
	if err != nil {
		fmt.Fprintf(stderr, "postern %s: %v\n", name, err)
		return nil, exitUsage
	}
	return log, exitOK
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	// Not in register: the keys commands share those flags and have nothing to profile.
	fs.StringVar(&f.adminListen, "admin-listen", "", "serve /metrics on this separate `host:port` (overrides config admin_listen; off by default)")
	fs.StringVar(&f.pprof, "pprof", "", "serve net/http/pprof on this separate `host:port` (off by default; keep it on loopback)")
	log, code := parseCommand("serve", fs, args, &f.logFormat, &f.logLevel, stdout, stderr)
	if log == nil {
		return code
	}
	cfg, err := loadServeConfig(&f)
	if err != nil {
		fmt.Fprintln(stderr, "postern serve:", err)
		return exitUsage
	}
	if f.pprof != "" {
		stopPprof, err := startPprof(f.pprof, cfg.Addr, log, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "postern serve:", err)
			return exitUsage
		}
		defer stopPprof()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the configuration (reload.go); caught from here on, so
	// one sent while starting does not end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloads := reloadSource[*Config]{signals: hup, load: func() (*Config, error) { return loadServeConfig(&f) }}
	if err := serve(ctx, cfg, f.secretFile, reloads, log, stdout); err != nil {
		log.Error("postern stopped", "error", err)
		return exitError
	}
	return exitOK
}

// startPprof serves the net/http/pprof handlers on their own listener and
// mux, never on the main port. (Importing net/http/pprof also registers them
// on http.DefaultServeMux, which postern never serves.) No WriteTimeout: a
// CPU profile streams for as many seconds as it was asked for.
func startPprof(addr, mainAddr string, log *slog.Logger, stdout io.Writer) (stop func(), err error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: expected host:port, got %q", addr)
	}
	if addr == mainAddr && port != "0" {
		return nil, fmt.Errorf("--pprof: %s is the main listen address; profiling needs its own", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Warn("pprof enabled: its endpoints expose process internals; keep them on loopback", "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "postern pprof at http://%s/debug/pprof/\n", ln.Addr())
	return func() { _ = hs.Close() }, nil
}

// serve runs the server for cfg until ctx ends, applying the configuration
// reloads asks for (see reload.go).
func serve(ctx context.Context, cfg *Config, secretFile string, reloads reloadSource[*Config], log *slog.Logger, stdout io.Writer) error {
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	tp, stopTracing, err := startTracing(cfg.Tracing, log)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the spans of the final requests
	// are flushed once the listener has drained.
	defer stopTracing()
	log = withTraceIDs(log, tp)
	if err := checkSharedSecret(cfg, secretFile); err != nil {
		return err
	}
	secret, err := keys.LoadSecret(os.Getenv("POSTERN_SECRET"), secretFile, cfg.DataDir, log)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "error", err)
		}
	}()
	if bs, ok := store.(*bolt.Store); ok {
		// Stopped before the store closes (defers run in reverse).
		stopAdmin, err := startAdmin(cfg.DataDir, bs, filepath.Join(cfg.DataDir, "postern.db"), log)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}
	km, err := keys.Open(ctx, store, secret, keys.Options{Algorithm: cfg.KeyAlgorithm, Overlap: cfg.KeyOverlap})
	if err != nil {
		return withSecretHint(err, cfg)
	}
	if cfg.Store != "" {
		// Stopped before the store closes (defers run in reverse).
		rctx, stopReload := context.WithCancel(ctx)
		reloadDone := make(chan struct{})
		go func() { defer close(reloadDone); reloadKeys(rctx, km, cfg.KeyReload, log) }()
		defer func() { stopReload(); <-reloadDone }()
	}
	{
		rctx, stopRotate := context.WithCancel(ctx)
		rotateDone := make(chan struct{})
		opts := keys.Options{Algorithm: cfg.KeyAlgorithm, Overlap: cfg.KeyOverlap}
		go func() { defer close(rotateDone); rotateKeys(rctx, store, secret, km, opts, cfg.KeyRotate, log) }()
		defer func() { stopRotate(); <-rotateDone }()
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set by --addr or the config's addr): %w", cfg.Addr, err)
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	// With port 0 (tests) the issuer can only be known once we listen.
	if cfg.Issuer == "" {
		cfg.Issuer = scheme + "://" + ln.Addr().String()
	}
	base := newServeBase(ctx, store, km, secret, log, tp)
	if cfg.ACME != nil {
		stopACME, err := startServeACME(ctx, cfg, store, secret, base.metrics, log, stdout)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopACME()
	}
	inst, err := base.build(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.AdminListen != "" {
		stopAdmin, err := startAdminListener(cfg.AdminListen, base.metrics, log, stdout)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopAdmin()
	}
	rl := &serveReloader{base: base, load: reloads.load, defaultIssuer: scheme + "://" + ln.Addr().String(),
		handler: newSwapHandler(inst.srv), cur: inst}
	defer rl.close()
	hs := &http.Server{
		Handler:           rl.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Revocation-feed streams never end by themselves; Shutdown would wait
	// for them until its deadline.
	hs.RegisterOnShutdown(func() { rl.cur.srv.CloseStreams() })
	errc := make(chan error, 1)
	if cfg.TLS != nil {
		hs.TLSConfig = cfg.TLS
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	log.Info("postern ready", "pid", os.Getpid(), "addr", ln.Addr().String(), "issuer", cfg.Issuer, "data_dir", cfg.DataDir, "store", storeName(cfg, store),
		"clients", len(cfg.Clients), "access_token_format", cfg.Format)
	fmt.Fprintf(stdout, "postern listening on %s://%s (issuer %s)\n", scheme, ln.Addr(), cfg.Issuer)

	if err := serveUntilStopped(ctx, errc, reloads, func() { rl.reload() }, log); err != nil {
		return err
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

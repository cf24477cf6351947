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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-auth/postern/gateway"
)

type gatewayFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func runGateway(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f gatewayFlags
	fs.StringVar(&f.config, "config", "", "configuration `file` (JSON)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	log, code := parseCommand("gateway", fs, args, &f.logFormat, &f.logLevel, stdout, stderr)
	if log == nil {
		return code
	}
	if f.config == "" {
		fmt.Fprintln(stderr, "postern gateway: --config is required")
		return exitUsage
	}
	cfg, err := gateway.LoadConfig(f.config, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "postern gateway:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the configuration (reload_gateway.go).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloads := reloadSource[*gateway.FileConfig]{signals: hup, load: func() (*gateway.FileConfig, error) { return gateway.LoadConfig(f.config, os.Getenv) }}
	if err := runGatewayServer(ctx, cfg, reloads, log, stdout); err != nil {
		log.Error("postern gateway stopped", "error", err)
		return exitError
	}
	return exitOK
}

// runGatewayServer runs the gateway for cfg until ctx ends, applying the
// configuration reloads asks for.
func runGatewayServer(ctx context.Context, cfg *gateway.FileConfig, reloads reloadSource[*gateway.FileConfig], log *slog.Logger, stdout io.Writer) error {
	tp, stopTracing, err := startTracing(cfg.Tracing, log)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the final requests' spans are
	// flushed once the listeners have drained.
	defer stopTracing()
	log = withTraceIDs(log, tp)
	var collectors []prometheus.Collector
	if cfg.ACME != nil {
		c, stopACME, err := startGatewayACME(ctx, cfg, log, stdout)
		if err != nil {
			return err
		}
		defer stopACME()
		collectors = append(collectors, c)
	}
	gcfg := cfg.Gateway
	gw, err := newGateway(cfg, log, tp, collectors)
	if err != nil {
		return err
	}
	rl := &gatewayReloader{ctx: ctx, log: log, tracer: tp, load: reloads.load, handler: newSwapHandler(gw), cur: cfg, gw: gw, collectors: collectors}
	defer rl.close()
	// Before listening: a gateway whose credentials the server refuses
	// would answer every request with 503, so it does not start. A server
	// that cannot be reached yet only gets a warning.
	if err := rl.checkAuthServer(gw, gcfg.Issuer); err != nil {
		return err
	}
	gw.Subscribe(ctx)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (set by the config's listen): %w", cfg.Listen, err)
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	hs := &http.Server{
		Handler:           rl.handler,
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: uploads, server-sent events and
		// WebSockets stream for as long as they need; idle keep-alive
		// connections are still closed.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	servers := []*http.Server{hs}
	errc := make(chan error, 2)
	go func() {
		if cfg.TLS != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()

	var adminAddr net.Addr
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			hs.Close()
			return fmt.Errorf("listen on admin_listen %s: %w", cfg.AdminListen, err)
		}
		adminAddr = aln.Addr()
		mux := http.NewServeMux()
		rl.metrics = newSwapHandler(gw.MetricsHandler())
		mux.Handle("GET /metrics", rl.metrics)
		mux.HandleFunc("GET "+gateway.HealthPath, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		as := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		servers = append(servers, as)
		go func() { errc <- as.Serve(aln) }()
	}

	log.Info("postern gateway ready", "pid", os.Getpid(), "addr", ln.Addr().String(), "issuer", gcfg.Issuer, "routes", len(gcfg.Routes))
	fmt.Fprintf(stdout, "postern gateway listening on %s://%s\n", scheme, ln.Addr())
	if adminAddr != nil {
		fmt.Fprintf(stdout, "postern gateway metrics at http://%s/metrics\n", adminAddr)
	}

	if err := serveUntilStopped(ctx, errc, reloads, func() { rl.reload() }, log); err != nil {
		return err
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

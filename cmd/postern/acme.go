package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme/autocert"

	"github.com/postern-auth/postern/acmecert"
	"github.com/postern-auth/postern/acmecert/storecache"
	"github.com/postern-auth/postern/gateway"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/storage"
)

// startServeACME gives the server's listener certificates from the ACME CA
// (tls.acme): the cache is the store, sealed with the system secret, so a
// restart reuses the certificate and replicas on one PostgreSQL share it
// and order it once. It completes cfg.TLS, registers the expiry metric,
// and starts the upkeep loop and the http_listen listener; stop ends them.
func startServeACME(ctx context.Context, cfg *Config, store storage.Store, secret keys.Secret, reg prometheus.Registerer, log *slog.Logger, stdout io.Writer) (stop func(), err error) {
	sealer, err := keys.NewBlobSealer(secret, keys.PurposeACME)
	if err != nil {
		return nil, fmt.Errorf("tls.acme: %w", err)
	}
	cache := storecache.New(store, sealer, cfg.ACME.CacheNamespace(), processHolder(), cfg.ACME.RenewBefore)
	m, stop, err := startACME(ctx, cfg.ACME, cache, log, stdout)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(m); err != nil {
		stop()
		return nil, fmt.Errorf("tls.acme: metrics: %w", err)
	}
	cfg.TLS = m.TLSConfig()
	return stop, nil
}

// startGatewayACME is startServeACME for the gateway, which has no store:
// its account and certificates are files in data_dir/acme/NAMESPACE, one
// directory per ACME directory URL (autocert's
// DirCache: directory 0700, files 0600), not sealed, since the gateway has
// no system secret to seal them with; a restart reuses them. Gateways that
// run side by side each keep their own data_dir.
func startGatewayACME(ctx context.Context, cfg *gateway.FileConfig, log *slog.Logger, stdout io.Writer) (collector prometheus.Collector, stop func(), err error) {
	m, stop, err := startACME(ctx, cfg.ACME, autocert.DirCache(filepath.Join(cfg.DataDir, "acme", cfg.ACME.CacheNamespace())), log, stdout)
	if err != nil {
		return nil, nil, err
	}
	cfg.TLS = m.TLSConfig()
	return m, stop, nil
}

// startACME is what server and gateway share: the manager, its metric, its
// upkeep loop and its http_listen listener. The manager gives the
// listener's TLS configuration and is the expiry metric's collector.
func startACME(ctx context.Context, ac *acmecert.Config, cache autocert.Cache, log *slog.Logger, stdout io.Writer) (*acmecert.Manager, func(), error) {
	m, err := acmecert.New(ac, acmecert.Options{Cache: cache, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var hs *http.Server
	if ac.HTTPListen != "" {
		ln, err := net.Listen("tcp", ac.HTTPListen)
		if err != nil {
			return nil, nil, fmt.Errorf("tls.acme.http_listen %s: %w", ac.HTTPListen, err)
		}
		hs = &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		go func() { _ = hs.Serve(ln) }()
		fmt.Fprintf(stdout, "postern acme http_listen at http://%s (http-01 challenges; everything else redirected to https)\n", ln.Addr())
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.Run(rctx) }()
	log.Info("acme: certificates from the CA", "domains", ac.Domains, "directory", ac.DirectoryURL, "challenge", ac.Challenge)
	return m, func() {
		cancel()
		if hs != nil {
			_ = hs.Close()
		}
		wg.Wait()
	}, nil
}

// processHolder names this process in the store's leases: unique among
// replicas, and readable in the database for whoever looks.
func processHolder() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

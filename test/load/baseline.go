package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// baselineKinds are the servers -serve-baseline can run.
var baselineKinds = []string{"bare-http", "bare-bolt", "bare-proxy"}

// fixedJSON is bare-http's answer, about the size of an introspection answer.
const fixedJSON = `{"active":true,"client_id":"load-service","exp":1900000000,"iat":1800000000,"iss":"http://127.0.0.1:4444","scope":"read","token_type":"Bearer"}`

// serveBaseline runs one baseline server on 127.0.0.1:0 until ctx ends. It
// prints "listening on URL" like postern does, and answers GET /healthz.
// The handlers are as bare as the issue describes: no router, no logging,
// no metrics.
func serveBaseline(ctx context.Context, c childOptions, stdout io.Writer) error {
	var h http.Handler
	switch c.kind {
	case "bare-http":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, fixedJSON)
		})
	case "bare-bolt":
		if c.dataDir == "" {
			return errors.New("bare-bolt needs -baseline-data")
		}
		// Default options: fsync on every commit; Batch coalesces
		// concurrent puts into one transaction (MaxBatchDelay 10ms,
		// MaxBatchSize 1000).
		db, err := bbolt.Open(filepath.Join(c.dataDir, "bare.db"), 0o600, nil)
		if err != nil {
			return err
		}
		defer db.Close()
		bucket := []byte("t")
		if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
			return err
		}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				_, _ = io.WriteString(w, "ok\n")
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			key := make([]byte, 32)
			val := make([]byte, 200)
			_, _ = rand.Read(key)
			_, _ = rand.Read(val)
			if err := db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, val) }); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		})
	case "bare-proxy":
		target, err := url.Parse(c.upstream)
		if err != nil || target.Host == "" {
			return fmt.Errorf("bare-proxy needs -baseline-upstream URL, got %q", c.upstream)
		}
		h = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			// The connection pool the gateway's route proxies use too;
			// Go's default of 2 idle connections per host would make
			// the baseline reopen connections under load.
			Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256},
		}
	default:
		return fmt.Errorf("unknown baseline %q", c.kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "%s listening on http://%s\n", c.kind, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

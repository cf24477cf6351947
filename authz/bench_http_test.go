package authz

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// The two benchmarks below run under the same load (real HTTP over
// loopback, 32 concurrent clients, fsync on) so that their ratio means
// something on a noisy machine:
//
//	go test ./authz -run x -bench 'HTTP' -benchtime 3s
//
// BenchmarkBareBoltBatchHTTP is the baseline: a net/http handler doing one
// bbolt Batch put of 200 bytes, the least any durable token service can do.

const benchConcurrency = 32

func runHTTPLoad(b *testing.B, url string, newReq func() *http.Request) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var failures atomic.Int64
	b.SetParallelism((benchConcurrency + 1) / 2) // GOMAXPROCS=2 → 32 goroutines
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Do(newReq())
			if err != nil {
				failures.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failures.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
}

func BenchmarkCCTokenHTTP(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	runHTTPLoad(b, ts.URL, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+pathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("billing", f.secret)
		return req
	})
}

func BenchmarkBareBoltBatchHTTP(b *testing.B) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("t")
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := make([]byte, 32)
		val := make([]byte, 200)
		_, _ = rand.Read(key)
		_, _ = rand.Read(val)
		err := db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, val) })
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer ts.Close()
	runHTTPLoad(b, ts.URL, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader("x=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	})
}

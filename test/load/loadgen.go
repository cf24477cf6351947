package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1µs to 60s, with three
// significant digits (at most 0.1% off).
const (
	histMinUS = 1
	histMaxUS = 60_000_000
	histSig   = 3
)

// worker is one closed-loop client: it sends its next request only once the
// previous answer was read.
type worker struct {
	// next builds the next request. Work it does before returning (such as
	// starting a new refresh chain after a failure) is not timed.
	next func(ctx context.Context) (*http.Request, error)
	// check looks at a 2xx answer; an error makes the request count as
	// failed. nil: any 2xx is a success.
	check func(body []byte) error
	// failed is told that the last request failed. nil: nothing to do.
	failed func()
}

// newTransport is the one keep-alive transport all workers of a scenario
// share, with exactly one connection per worker.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// loadResult is what one measured phase produced.
type loadResult struct {
	hist         *hdrhistogram.Histogram
	requests     int64 // completed within the measured window, successes and failures
	errors       int64 // failures within the measured window
	warmupErrors int64
	firstError   string
	window       time.Duration
}

// runLoad runs the workers for warmup+duration. Only requests that complete
// inside the measured window count; onMeasure (which must not block) is
// called when it opens.
func runLoad(ctx context.Context, client *http.Client, workers []*worker, warmup, duration time.Duration, onMeasure func()) *loadResult {
	start := time.Now()
	mStart := start.Add(warmup)
	mEnd := mStart.Add(duration)
	ctx, cancel := context.WithDeadline(ctx, mEnd.Add(30*time.Second))
	defer cancel()

	res := &loadResult{hist: hdrhistogram.New(histMinUS, histMaxUS, histSig), window: duration}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hist := hdrhistogram.New(histMinUS, histMaxUS, histSig)
			var n, errs, warmErrs int64
			var firstErr string
			var buf bytes.Buffer
			for ctx.Err() == nil && time.Now().Before(mEnd) {
				req, err := w.next(ctx)
				if err != nil {
					// The worker could not even build a request (say, a refresh
					// chain could not be restarted): one failure, then retry.
					if time.Now().After(mStart) {
						n++
						errs++
					} else {
						warmErrs++
					}
					if firstErr == "" {
						firstErr = err.Error()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				t0 := time.Now()
				err = do(client, req, &buf, w.check)
				t1 := time.Now()
				inWindow := !t1.Before(mStart) && t1.Before(mEnd)
				if err != nil {
					if w.failed != nil {
						w.failed()
					}
					if inWindow {
						errs++
					} else if t1.Before(mStart) {
						warmErrs++
					}
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
				if inWindow {
					n++
					_ = hist.RecordValue(max(t1.Sub(t0).Microseconds(), histMinUS))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.hist.Merge(hist)
			res.requests += n
			res.errors += errs
			res.warmupErrors += warmErrs
			if res.firstError == "" {
				res.firstError = firstErr
			}
		}()
	}
	if onMeasure != nil {
		// Part of the wait group, so onMeasure has returned (and what it
		// set is visible) once runLoad returns.
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(mStart)):
				onMeasure()
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	return res
}

// do sends one request and reads the whole answer; a transport error, a
// non-2xx status or a failed check is an error.
func do(client *http.Client, req *http.Request, buf *bytes.Buffer, check func([]byte) error) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: status %d: %.200s", req.Method, req.URL.Path, resp.StatusCode, buf.Bytes())
	}
	if check != nil {
		if err := check(buf.Bytes()); err != nil {
			return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

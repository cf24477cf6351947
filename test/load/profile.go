package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// profileCapture is a CPU profile being fetched from a server's pprof
// listener while the load runs.
type profileCapture struct {
	path string
	done chan error
}

// captureProfile asks pprofURL for a CPU profile of the next few seconds
// (opts.profileSeconds, shortened to fit the measured window, at least 1s)
// and writes it to path.
func (r *runner) captureProfile(pprofURL, path string) *profileCapture {
	secs := min(r.opts.profileSeconds, int(r.opts.duration/time.Second))
	secs = max(secs, 1)
	pc := &profileCapture{path: path, done: make(chan error, 1)}
	go func() {
		pc.done <- fetchProfile(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", pprofURL, secs), path, time.Duration(secs)*time.Second+30*time.Second)
	}()
	return pc
}

func fetchProfile(u, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: status %d: %s", u, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (pc *profileCapture) wait() error { return <-pc.done }

package main

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck asks a /healthz URL once: exit 0 on 200, 1 otherwise. It
// is the container image's HEALTHCHECK, where no curl exists.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: postern healthcheck URL   (e.g. http://127.0.0.1:4444/healthz)")
		return exitUsage
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "postern healthcheck:", err)
		return exitError
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "postern healthcheck: %s answered %d\n", args[0], resp.StatusCode)
		return exitError
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

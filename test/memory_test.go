package test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// peakRSS reads the process's high-water resident set (VmHWM) in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("VmHWM not found")
	return 0
}

// TestParallelWrongLoginsBoundedMemory: argon2id holds 64 MiB per run, so
// unbounded parallel password checks would take gigabytes. 100 parallel
// wrong passwords (distinct users, so the throttle does not short-cut
// them) must leave the process under ~300 MiB.
func TestParallelWrongLoginsBoundedMemory(t *testing.T) {
	// Behind a trusted proxy each request comes from its own address, so
	// the per-address bound on attempts in flight does not shortcut them:
	// all 100 reach the password check, which is what this test loads.
	cfg, secret := userGrantsConfig(t)
	cfg = strings.Replace(cfg, `{
  "tokens"`, `{
  "trusted_proxies": ["127.0.0.1"],
  "tokens"`, 1)
	f := &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: secret}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("user%03d", i)}, "password": {"wrong"}}
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("mobile", "mobile-dev-secret-0123456789")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusBadRequest] != 100 {
		t.Errorf("statuses = %v, want 100 × 400 invalid_grant", statuses)
	}
	if kb := peakRSS(t, f.srv.cmd.Process.Pid); kb > 300*1024 {
		t.Errorf("peak RSS %d MiB after 100 parallel wrong logins, want ≤ 300 MiB", kb/1024)
	} else {
		t.Logf("peak RSS %d MiB", kb/1024)
	}
}

package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/postern-auth/postern/acmecert/acmetest"
)

// gwProc is one running helper process: `postern gateway` or the example
// echo backend.
type gwProc struct {
	t        *testing.T
	name     string
	URL      string
	AdminURL string // gateway with admin_listen only
	cmd      *exec.Cmd
	logs     *syncBuffer
	done     chan struct{}
	exitErr  error
}

var (
	gatewayListening = regexp.MustCompile(`listening on (https?://\S+)`)
	gatewayMetrics   = regexp.MustCompile(`metrics at (http://\S+)/metrics`)
)

// startGWProc runs bin with args and waits for its "listening on" line (and
// the metrics line when wantAdmin).
func startGWProc(t *testing.T, name, bin string, args, env []string, wantAdmin bool) *gwProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &gwProc{t: t, name: name, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls, admin := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte("[stdout] " + line + "\n"))
			if m := gatewayListening.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
			if m := gatewayMetrics.FindStringSubmatch(line); m != nil {
				select {
				case admin <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, p.logs.String())
		}
	})
	wait := func(ch chan string) string {
		select {
		case u := <-ch:
			return u
		case <-p.done:
			t.Fatalf("%s exited before listening (%v):\n%s", name, p.exitErr, p.logs.String())
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not report its address within 15s:\n%s", name, p.logs.String())
		}
		return ""
	}
	p.URL = wait(urls)
	if wantAdmin {
		p.AdminURL = wait(admin)
	}
	return p
}

// startGateway runs `postern gateway` with the given configuration and
// environment and waits until its /healthz answers.
func startGateway(t *testing.T, config string, env ...string) *gwProc {
	t.Helper()
	args := []string{"gateway", "--config", writeConfig(t, config), "--log-level", "debug"}
	p := startGWProc(t, "gateway", binary, args, env, strings.Contains(config, `"admin_listen"`))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gateway /healthz never answered 200:\n%s", p.logs.String())
	return nil
}

var (
	echoBackendOnce sync.Once
	echoBackendBin  string
	echoBackendErr  error
)

// startEchoBackend builds examples/echo-backend once and runs it.
func startEchoBackend(t *testing.T) *gwProc {
	t.Helper()
	echoBackendOnce.Do(func() {
		echoBackendBin = filepath.Join(filepath.Dir(binary), "echo-backend")
		out, err := exec.Command("go", "build", "-o", echoBackendBin, "github.com/postern-auth/postern/examples/echo-backend").CombinedOutput()
		if err != nil {
			echoBackendErr = fmt.Errorf("build echo-backend: %v\n%s", err, out)
		}
	})
	if echoBackendErr != nil {
		t.Fatal(echoBackendErr)
	}
	return startGWProc(t, "echo-backend", echoBackendBin, []string{"--listen", "127.0.0.1:0"}, nil, false)
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *gwProc) Stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s did not stop within 20s of SIGTERM:\n%s", p.name, p.logs.String())
	}
	if p.exitErr != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.exitErr, p.logs.String())
	}
}

func (p *gwProc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// gwFixture is an authorization server with the clients the gateway tests
// use: "gateway" (introspects), "billing" (read write) and "device-42" (a
// device registered as a client, read).
type gwFixture struct {
	srv           *server
	gatewaySecret string
	billingSecret string
	deviceSecret  string
	serverConfig  string
}

// newGWFixture starts a server; tokens is the server's "tokens" object and
// extraArgs go to startServer (a fixed --addr for restarts).
func newGWFixture(t *testing.T, tokens string, extraArgs ...string) *gwFixture {
	t.Helper()
	f := &gwFixture{}
	var gwHash, billingHash, deviceHash string
	f.gatewaySecret, gwHash = newClientSecret(t)
	f.billingSecret, billingHash = newClientSecret(t)
	f.deviceSecret, deviceHash = newClientSecret(t)
	f.serverConfig = writeConfig(t, fmt.Sprintf(`{
  "tokens": %s,
  "clients": [
    {"client_id": "gateway", "client_secret_hash": %q, "grant_types": ["client_credentials"], "resource_server": true},
    {"client_id": "billing", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read write"},
    {"client_id": "device-42", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read"}
  ]
}`, tokens, gwHash, billingHash, deviceHash))
	f.srv = startServer(t, f.serverConfig, "", extraArgs...)
	return f
}

func (f *gwFixture) token(t *testing.T, clientID string, scopes ...string) string {
	t.Helper()
	secret := map[string]string{"billing": f.billingSecret, "device-42": f.deviceSecret}[clientID]
	cc := &clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: f.srv.URL + "/oauth2/token",
		Scopes: scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("%s token: %v", clientID, err)
	}
	return tok.AccessToken
}

func (f *gwFixture) revoke(t *testing.T, token string) {
	t.Helper()
	resp, _ := postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {token}}, "billing", f.billingSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
}

// gatewayConfig is a gateway configuration for this server: routes
// /search/v1 (strip, read), /billing (read write) and /status (public) to
// backend, with mod applied last. The secret comes from the environment,
// as in production (see gatewayEnv).
func (f *gwFixture) gatewayConfig(t *testing.T, backend string, mod func(map[string]any)) string {
	t.Helper()
	cfg := map[string]any{
		"listen":        "127.0.0.1:0",
		"issuer":        f.srv.URL,
		"client_id":     "gateway",
		"client_secret": "${GATEWAY_CLIENT_SECRET}",
		"cache":         map[string]any{"ttl": "1m", "negative_ttl": "1s"},
		"routes": []any{
			map[string]any{"path_prefix": "/search/v1", "upstream": backend, "strip_prefix": true, "scopes": []string{"read"}},
			map[string]any{"path_prefix": "/billing", "upstream": backend, "scopes": []string{"read", "write"}},
			map[string]any{"path_prefix": "/status", "upstream": backend, "public": true},
		},
	}
	if mod != nil {
		mod(cfg)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (f *gwFixture) gatewayEnv() string { return "GATEWAY_CLIENT_SECRET=" + f.gatewaySecret }

func (f *gwFixture) startGateway(t *testing.T, backend string, mod func(map[string]any)) *gwProc {
	t.Helper()
	return startGateway(t, f.gatewayConfig(t, backend, mod), f.gatewayEnv())
}

// introspections reads the server's own count of answered introspection
// requests from its /metrics.
func (f *gwFixture) introspections(t *testing.T) int {
	t.Helper()
	return gwMetricValue(t, f.srv.MetricsURL(), "postern_http_requests_total", `endpoint="introspect"`, `code="200"`)
}

// metricValue sums the samples of name whose labels include all of labels.
func gwMetricValue(t *testing.T, metricsURL, name string, labels ...string) int {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0
lines:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// gwGet sends a GET with an optional bearer token and extra headers.
func gwGet(t *testing.T, u, token string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// echoSeen is the echo backend's answer.
type echoSeen struct {
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	RawQuery  string            `json:"raw_query"`
	UserID    string            `json:"user_id"`
	ClientID  string            `json:"client_id"`
	Scope     string            `json:"scope"`
	Forwarded string            `json:"forwarded"`
	PublicURL string            `json:"public_url"`
	Headers   map[string]string `json:"headers"`
}

func decodeSeen(t *testing.T, resp *http.Response, body []byte) echoSeen {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	var s echoSeen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("backend answer is not JSON: %q", body)
	}
	return s
}

// freeAddr finds a loopback port that is free now, for a server that must
// come back on the same address after a restart.
func gwFreeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", acmetest.FreePort(t))
}

// eventually polls cond every 100ms for up to limit: for changes the
// gateway promises within a bound (a cache TTL), never a timing assertion.
func gwEventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gatewayPeakRSS is the process's resident high-water mark in KiB.
func gatewayPeakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("VmHWM not in /proc status")
	return 0
}

// gwSeen sends a GET through the gateway and decodes the echo backend's
// answer, failing on any status but 200.
func gwSeen(t *testing.T, u, token string, hdr map[string]string) echoSeen {
	t.Helper()
	resp, body := gwGet(t, u, token, hdr)
	return decodeSeen(t, resp, body)
}

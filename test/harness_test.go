package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the postern executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postern-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "postern")
	build := exec.Command("go", "build", "-o", binary, "github.com/postern-auth/postern/cmd/postern")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build postern:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testSecret is the system secret every test server runs with.
const testSecret = "e2e-test-secret-0123456789abcdef0123456789"

// server is one running `postern serve` process.
type server struct {
	t       *testing.T
	URL     string
	DataDir string
	Config  string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
	exitErr error

	mu         sync.Mutex
	metricsURL string // the admin listener's /metrics
}

func (s *server) setMetricsURL(u string) {
	s.mu.Lock()
	s.metricsURL = u
	s.mu.Unlock()
}

// MetricsURL is where the server serves /metrics: its admin listener (the
// harness always starts one), never the public port.
func (s *server) MetricsURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metricsURL == "" {
		s.t.Fatal("the server printed no metrics address")
	}
	return s.metricsURL
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig stores a config file in a fresh directory and returns its path.
func writeConfig(t *testing.T, json string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postern.json")
	if err := os.WriteFile(path, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	listening    = regexp.MustCompile(`listening on (https?://\S+)`)
	metricsAtURL = regexp.MustCompile(`postern metrics at (http://\S+)/metrics`)
)

// startServer runs postern serve with configPath on a free port and dataDir
// (a fresh one when empty) and waits until /healthz answers.
func startServer(t *testing.T, configPath, dataDir string, extraArgs ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	args := append([]string{"serve", "--config", configPath, "--addr", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "debug"}, extraArgs...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "POSTERN_SECRET="+testSecret)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, DataDir: dataDir, Config: configPath, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte("[stdout] " + line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
			if m := metricsAtURL.FindStringSubmatch(line); m != nil {
				s.setMetricsURL(m[1] + "/metrics")
			}
		}
	}()
	go func() {
		s.exitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	select {
	case s.URL = <-urls:
	case <-s.done:
		t.Fatalf("postern exited before listening (%v):\n%s", s.exitErr, s.logs.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("postern did not report its address within 15s:\n%s", s.logs.String())
	}
	s.waitHealthy()
	return s
}

func (s *server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	// The health probe only asks whether the process is up; tests that
	// serve TLS check the certificate with their own client.
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for time.Now().Before(deadline) {
		resp, err := probe.Get(s.URL + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("/healthz never answered 200:\n%s", s.logs.String())
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *server) Stop() {
	s.t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("postern did not stop within 20s of SIGTERM:\n%s", s.logs.String())
	}
	if s.exitErr != nil {
		s.t.Fatalf("postern exited with %v after SIGTERM:\n%s", s.exitErr, s.logs.String())
	}
}

// Kill ends the process with SIGKILL: a crash.
func (s *server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// runPostern runs a one-shot postern command and returns its output and exit code.
func runPostern(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "POSTERN_SECRET="+testSecret)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run postern %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The install files cannot be run here (no Docker daemon, no systemd as
// PID 1); these tests hold what can be held: every file they name exists,
// the configurations they mount pass `postern check`, the image's health
// check command works, and systemd accepts the unit.

var composeMount = regexp.MustCompile(`(?m)^\s*- \./(\S+?):/etc/postern/\S+$`)

func TestComposeConfigurations(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var server, gw string
	for _, m := range composeMount.FindAllStringSubmatch(string(raw), -1) {
		path := filepath.Join(root, m[1])
		if _, err := os.Stat(path); err != nil {
			t.Errorf("docker-compose.yml mounts %s: %v", m[1], err)
		}
		if strings.Contains(m[0], "gateway.json") {
			gw = path
		} else {
			server = path
		}
	}
	if server == "" || gw == "" {
		t.Fatalf("docker-compose.yml should mount a server and a gateway configuration:\n%s", raw)
	}
	t.Setenv("DEMO_SERVICE_SECRET", "demo-service-secret") // as the compose file sets it
	out, errOut, code := runPostern(t, "", "check", "--config", server, "--gateway-config", gw)
	if code != 0 {
		t.Errorf("postern check on the compose configurations: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"http://postern:4444", "http://echo:9000"} {
		if b, _ := os.ReadFile(gw); !strings.Contains(string(b), want) {
			t.Errorf("%s does not reach the compose service at %s", gw, want)
		}
	}
}

var dockerCopy = regexp.MustCompile(`(?m)^COPY (\S+) /etc/postern/`)

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, m := range dockerCopy.FindAllStringSubmatch(df, -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("Dockerfile copies %s: %v", m[1], err)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot", `VOLUME ["/data"]`, "HEALTHCHECK", `"healthcheck", "http://127.0.0.1:4444/healthz"`, "./cmd/postern ./examples/echo-backend"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The health check the image runs, against a real server and a closed port.
	srv := startServer(t, writeConfig(t, `{}`), "")
	if out, errOut, code := runPostern(t, "", "healthcheck", srv.URL+"/healthz"); code != 0 {
		t.Errorf("postern healthcheck on a ready server: exit %d %s%s", code, out, errOut)
	}
	if _, _, code := runPostern(t, "", "healthcheck", "http://"+gwFreeAddr(t)+"/healthz"); code != 1 {
		t.Errorf("postern healthcheck on a closed port: exit %d, want 1", code)
	}
}

// systemd-analyze verify checks the unit's syntax, its sandboxing
// directives and that ExecStart names an executable (the built binary
// stands in for /usr/local/bin/postern).
func TestSystemdUnit(t *testing.T) {
	requireTools(t, "systemd-analyze")
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "systemd", "postern.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=postern", "LoadCredential=postern-secret:", "--secret-file ${CREDENTIALS_DIRECTORY}/postern-secret"} {
		if !strings.Contains(unit, want) {
			t.Errorf("postern.service lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "postern.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/postern", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

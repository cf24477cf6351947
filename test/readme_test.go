package test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README tests run the shell blocks of a README the way a newcomer
// pastes them: in order, each command in a shell that carries the variables
// of the ones before, in a directory holding a copy of examples/. What they
// change, and nothing else:
//
//   - the fixed ports (4444 server, 8080 gateway, 9090 its metrics, 9000
//     echo backend) become free ones, in commands, expected output
//     (127.0.0.1:P, localhost:P, Forwarded's port=P) and the copied example
//     configurations alike;
//   - `go run ./cmd/postern` and `./postern` run the binary TestMain built,
//     `go run ./examples/echo-backend` a build of it, and
//     `go build -o postern ./cmd/postern` copies that binary: the same
//     programs, without compiling them again;
//   - `go test ./...` is skipped: it is the command running this test;
//   - a line marked `# (browser)` is what a person does in a browser: the
//     test signs in as alice over HTTP at the authorization URL the block
//     before printed, allows, and sets the line's variable to the code;
//   - a command that starts a server (serve, gateway, echo backend) runs in
//     the background until the test ends; the next command waits for it.
//
// Comment lines right under a command are its expected output: each must
// match a line the command printed, where … stands for anything.

// readmeCommand is one logical command of a shell block.
type readmeCommand struct {
	line   int    // where it starts in the README
	text   string // continuation lines joined
	expect []string
}

// readmeCommands extracts the commands of the ```sh blocks of a Markdown file.
func readmeCommands(t *testing.T, path string) []readmeCommand {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []readmeCommand
	inSh, inOther, afterCmd := false, false, false
	var cur *readmeCommand
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !inSh && !inOther && strings.HasPrefix(trimmed, "```"):
			inSh, inOther = trimmed == "```sh", trimmed != "```sh"
			afterCmd = false
			continue
		case inOther:
			inOther = trimmed != "```"
			continue
		case !inSh:
			continue
		case trimmed == "```":
			inSh = false
			continue
		}
		if cur != nil { // inside a continuation
			cur.text += "\n" + line
			if !strings.HasSuffix(line, `\`) {
				cmds = append(cmds, *cur)
				cur, afterCmd = nil, true
			}
			continue
		}
		switch {
		case trimmed == "":
			afterCmd = false
		case strings.HasPrefix(trimmed, "#"):
			if afterCmd {
				c := &cmds[len(cmds)-1]
				c.expect = append(c.expect, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			}
		case strings.HasSuffix(line, `\`):
			cur = &readmeCommand{line: i + 1, text: line}
		default:
			cmds = append(cmds, readmeCommand{line: i + 1, text: line})
			afterCmd = true
		}
	}
	if inSh || cur != nil {
		t.Fatalf("%s: unterminated shell block or continuation", path)
	}
	return cmds
}

// readmeRun holds one README run: its ports, processes and shell state.
type readmeRun struct {
	t       *testing.T
	dir     string
	ports   map[string]string // README port -> free port
	env     []string
	outputs []string
	echoBin string
}

var (
	browserLine  = regexp.MustCompile(`^([A-Z_]+)=\S*\s+# \(browser\)`)
	longRunning  = regexp.MustCompile(`postern (serve|gateway) |echo-backend`)
	readmePorts  = []string{"4444", "8080", "9090", "9000"}
	authorizeURL = regexp.MustCompile(`http://\S+/oauth2/authorize\?\S+`)
)

func newReadmeRun(t *testing.T, repo string) *readmeRun {
	t.Helper()
	r := &readmeRun{t: t, dir: t.TempDir(), ports: map[string]string{}}
	for _, p := range readmePorts {
		_, free, _ := strings.Cut(gwFreeAddr(t), ":")
		r.ports[p] = free
	}
	// examples/, with the ports of its configurations replaced.
	err := filepath.WalkDir(filepath.Join(repo, "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(r.dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".json") {
			b = []byte(r.subst(string(b)))
		}
		return os.WriteFile(filepath.Join(r.dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	echo := startEchoBackend(t) // builds it once; this instance is not used
	echo.Kill()
	r.echoBin = echoBackendBin
	// Nothing of the developer's environment that the README does not set.
	r.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.dir, "LANG=C"}
	return r
}

// subst moves the README's fixed ports to this run's.
func (r *readmeRun) subst(s string) string {
	for _, p := range readmePorts {
		s = strings.ReplaceAll(s, "127.0.0.1:"+p, "127.0.0.1:"+r.ports[p])
		s = strings.ReplaceAll(s, "localhost:"+p, "localhost:"+r.ports[p])
		s = strings.ReplaceAll(s, "port="+p, "port="+r.ports[p]) // in Forwarded
	}
	return s
}

// shellText is the command as this run executes it (see the top of the file).
func (r *readmeRun) shellText(c readmeCommand) (string, bool) {
	text := r.subst(c.text)
	if strings.TrimSpace(strings.SplitN(text, "#", 2)[0]) == "go test ./..." {
		return "", false
	}
	text = strings.ReplaceAll(text, "go build -o postern ./cmd/postern", "cp "+binary+" postern")
	text = strings.ReplaceAll(text, "go run ./cmd/postern", binary)
	text = strings.ReplaceAll(text, "./postern ", binary+" ")
	text = strings.ReplaceAll(text, "go run ./examples/echo-backend", r.echoBin)
	return text, true
}

func (r *readmeRun) runAll(cmds []readmeCommand) {
	for _, c := range cmds {
		if m := browserLine.FindStringSubmatch(c.text); m != nil {
			r.browser(c, m[1])
			continue
		}
		text, ok := r.shellText(c)
		if !ok {
			continue
		}
		if m := longRunning.FindStringSubmatch(text); m != nil {
			r.background(c, text, m[0])
			continue
		}
		r.run(c, text)
	}
}

// run executes one command in bash with the state of the commands before
// it and checks its expected output.
func (r *readmeRun) run(c readmeCommand, text string) {
	t := r.t
	state := filepath.Join(r.dir, ".readme-env")
	script := "set -a -e -o pipefail\n" + text + "\nenv -0 > " + state + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--norc", "--noprofile", "-c", script)
	cmd.Dir, cmd.Env = r.dir, r.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("README line %d failed (%v):\n%s\noutput:\n%s", c.line, err, c.text, out.String())
	}
	env, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	r.env = nil
	for _, kv := range strings.Split(strings.TrimSuffix(string(env), "\x00"), "\x00") {
		// Bash's own variables are set again by the next shell.
		if name, _, _ := strings.Cut(kv, "="); name != "SHLVL" && name != "_" && name != "PWD" && name != "OLDPWD" {
			r.env = append(r.env, kv)
		}
	}
	r.outputs = append(r.outputs, out.String())
	checkExpected(t, c, r.subst(out.String()), r)
}

func checkExpected(t *testing.T, c readmeCommand, out string, r *readmeRun) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, want := range c.expect {
		parts := strings.Split(r.subst(want), "…")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re := regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
		found := false
		for _, l := range lines {
			if re.MatchString(strings.TrimSpace(l)) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README line %d:\n%s\nprinted:\n%s\nnone of it matches the README's\n# %s", c.line, c.text, out, want)
		}
	}
}

// background starts a server the README runs in its own terminal and
// waits until it answers.
func (r *readmeRun) background(c readmeCommand, text, what string) {
	t := r.t
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", "set -a\n"+text)
	cmd.Dir, cmd.Env = r.dir, r.env
	// Its own process group: bash and what it started end together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("README line %d (%s) logs:\n%s", c.line, what, logs.String())
		}
	})
	port := map[string]string{"postern serve ": "4444", "postern gateway ": "8080", "echo-backend": "9000"}[what]
	u := "http://127.0.0.1:" + r.ports[port] + "/healthz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("README line %d exited:\n%s\n%s", c.line, c.text, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("README line %d: %s never answered 200:\n%s", c.line, u, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser does what the README asks of a person with a browser: open the
// last authorization URL printed, sign in as alice, allow, and take the
// code from the callback's address.
func (r *readmeRun) browser(c readmeCommand, variable string) {
	t := r.t
	var u string
	for i := len(r.outputs) - 1; i >= 0 && u == ""; i-- {
		u = authorizeURL.FindString(r.outputs[i])
	}
	if u == "" {
		t.Fatalf("README line %d needs a browser, but no authorization URL was printed before it", c.line)
	}
	srv := "http://127.0.0.1:" + r.ports["4444"]
	b := newBrowser(t)
	p := b.get(u)
	p = b.login(srv, p, "alice", "alice-password")
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(srv, p, "allow", false)
	}
	code := callback(t, p).Get("code")
	if code == "" {
		t.Fatalf("README line %d: no code in %s", c.line, p.location)
	}
	r.env = append(r.env, variable+"="+code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing in CI", tool)
			}
			t.Skipf("%s is not installed; the README needs it", tool)
		}
	}
}

// TestReadmeTour runs every shell block of README.md against fresh
// processes, so the tour cannot rot.
func TestReadmeTour(t *testing.T) {
	requireTools(t, "bash", "curl", "openssl", "sed", "grep")
	root := repoRoot(t)
	// Up to the performance section: its load run takes minutes and is
	// measured, not tested.
	cmds := readmeCommands(t, filepath.Join(root, "README.md"))
	for i, c := range cmds {
		if strings.Contains(c.text, "./test/load") {
			cmds = cmds[:i]
			break
		}
	}
	if len(cmds) < 20 {
		t.Fatalf("found only %d commands in README.md's shell blocks", len(cmds))
	}
	newReadmeRun(t, root).runAll(cmds)
}

// TestGatewayReadme runs examples/gateway/README.md the same way.
func TestGatewayReadme(t *testing.T) {
	requireTools(t, "bash", "curl", "sed")
	root := repoRoot(t)
	cmds := readmeCommands(t, filepath.Join(root, "examples", "gateway", "README.md"))
	if len(cmds) < 5 {
		t.Fatalf("found only %d commands in the gateway README's shell blocks", len(cmds))
	}
	newReadmeRun(t, root).runAll(cmds)
}

// TestReadmeCommandsParse pins the extraction rules the two tests rely on.
func TestReadmeCommandsParse(t *testing.T) {
	md := "text\n```sh\n# heading comment\nA=1\ncurl -s \\\n  x\n# {\"a\":…}\n\n# not output\nB=2   # (browser)\n```\n```json\n{}\n```\n"
	path := filepath.Join(t.TempDir(), "R.md")
	if err := os.WriteFile(path, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	got := readmeCommands(t, path)
	want := []readmeCommand{{4, "A=1", nil}, {5, "curl -s \\\n  x", []string{`{"a":…}`}}, {10, "B=2   # (browser)", nil}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if !browserLine.MatchString(got[2].text) {
		t.Error("browser marker not recognised")
	}
}

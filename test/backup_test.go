package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// timedToken is a token request of the load, with when it was sent and
// when its whole answer arrived.
type timedToken struct {
	issued
	sent, arrived time.Time
}

// tokenLoad runs workers that ask for tokens until stop is closed.
type tokenLoad struct {
	mu   sync.Mutex
	got  []timedToken
	stop chan struct{}
	wg   sync.WaitGroup
}

func startTokenLoad(f *ccFixture, workers int) *tokenLoad {
	l := &tokenLoad{stop: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				sc := scopeCases[(w+i)%len(scopeCases)]
				sent := time.Now()
				r := requestToken(context.Background(), c, f.srv.URL+"/oauth2/token", f.billingSecret, strings.Join(sc.req, " "))
				if r.token != "" {
					l.mu.Lock()
					l.got = append(l.got, timedToken{issued{r.token, sc.want}, sent, time.Now()})
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *tokenLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func (l *tokenLoad) end() []timedToken {
	close(l.stop)
	l.wg.Wait()
	return l.got
}

func (l *tokenLoad) waitFor(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); l.count() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens issued in 60s, want %d", l.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// latencies summarises the answer times of the requests sent in [from, to).
func latencies(toks []timedToken, from, to time.Time) string {
	var d []time.Duration
	for _, tk := range toks {
		if !tk.sent.Before(from) && tk.sent.Before(to) {
			d = append(d, tk.arrived.Sub(tk.sent))
		}
	}
	if len(d) == 0 {
		return "no requests"
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))].Round(10 * time.Microsecond) }
	return strings.Join([]string{"n=" + strconv.Itoa(len(d)), "p50=" + q(0.5).String(), "p99=" + q(0.99).String(), "max=" + d[len(d)-1].Round(10*time.Microsecond).String()}, " ")
}

var sha256Line = regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64})$`)

// TestBackupUnderLoad takes an online backup while token requests keep
// coming, then restores it by starting a server on the copy: every token
// whose answer arrived before the backup began is active there.
func TestBackupUnderLoad(t *testing.T) {
	f := newCCFixture(t, "opaque")
	load := startTokenLoad(f, 8)
	load.waitFor(t, 2000) // a file of some size, so the copy takes a while

	out := filepath.Join(t.TempDir(), "backup", "postern.db")
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stdout, stderr, code := runPostern(t, "", "backup", "--config", f.srv.Config, "--data", f.srv.DataDir, "--out", out)
	end := time.Now()
	load.waitFor(t, load.count()+200) // load after the backup, for the comparison
	toks := load.end()
	if code != 0 {
		t.Fatalf("postern backup: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("postern backup took %v:\n%s", end.Sub(start).Round(time.Millisecond), stdout)
	t.Logf("token latency before the backup: %s", latencies(toks, time.Time{}, start))
	t.Logf("token latency during the backup: %s", latencies(toks, start, end))
	t.Logf("token latency after the backup:  %s", latencies(toks, end, time.Now()))

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if m := sha256Line.FindStringSubmatch(stdout); m == nil || m[1] != hex.EncodeToString(sum[:]) {
		t.Errorf("backup summary does not give the file's SHA-256 %x:\n%s", sum, stdout)
	}
	if !strings.Contains(stdout, "newest token: access token created ") || !strings.Contains(stdout, "client billing") {
		t.Errorf("backup summary does not name the newest token:\n%s", stdout)
	}
	if side, err := os.ReadFile(out + ".sha256"); err != nil || string(side) != hex.EncodeToString(sum[:])+"  postern.db\n" {
		t.Errorf("sidecar %s.sha256 = %q, %v", out, side, err)
	}

	stdout, stderr, code = runPostern(t, "", "backup", "--verify", out)
	if code != 0 || !strings.Contains(stdout, "consistent") || !strings.Contains(stdout, "matches postern.db.sha256") {
		t.Fatalf("postern backup --verify on the fresh copy: exit %d\n%s%s", code, stdout, stderr)
	}

	var before []issued
	for _, tk := range toks {
		if tk.arrived.Before(start) {
			before = append(before, tk.issued)
		}
	}
	t.Logf("%d tokens answered before the backup started, %d in all", len(before), len(toks))

	// Restore: a server on the copy, beside the live one.
	restored := startServer(t, f.srv.Config, filepath.Dir(out))
	checkAllActive(t, &ccFixture{srv: restored, billingSecret: f.billingSecret}, before)
}

// TestBackupVerifyRefusesDamage: a copy cut short, a copy with one bit
// flipped (the checksum beside it catches any flip), and copies flipped
// anywhere without their checksum, which must be answered, never crash.
func TestBackupVerifyRefusesDamage(t *testing.T) {
	f := newCCFixture(t, "opaque")
	for range 300 {
		if _, err := f.billing("read").Token(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code := runPostern(t, "", "backup", "--config", f.srv.Config, "--data", f.srv.DataDir, "--out", "-")
	if code != 0 {
		t.Fatalf("postern backup --out -: exit %d\n%s", code, stderr)
	}
	if !sha256Line.MatchString(stderr) || !strings.Contains(stderr, "written to stdout") {
		t.Errorf("with --out - the summary belongs on stderr:\n%s", stderr)
	}
	good := []byte(stdout)
	dir := t.TempDir()
	write := func(name string, b []byte, sidecar bool) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if sidecar {
			s := sha256.Sum256(good)
			if err := os.WriteFile(p+".sha256", []byte(hex.EncodeToString(s[:])+"  "+name+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	verify := func(p string) (string, int) {
		stdout, stderr, code := runPostern(t, "", "backup", "--verify", p)
		return stdout + stderr, code
	}

	if out, code := verify(write("good.db", good, true)); code != 0 {
		t.Fatalf("--verify on the copy from stdout: exit %d\n%s", code, out)
	}
	if out, code := verify(write("cut.db", good[:len(good)/2], false)); code != 1 || !strings.Contains(out, "cut short") {
		t.Errorf("--verify on a copy cut in half: exit %d, want 1 saying it was cut short\n%s", code, out)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2+123] ^= 0x04
	if out, code := verify(write("flipped.db", flipped, true)); code != 1 || !strings.Contains(out, "changed since the backup") {
		t.Errorf("--verify on a copy with one bit flipped: exit %d, want 1 naming the checksum\n%s", code, out)
	}

	// Without a checksum, only structure can tell. Headers of every page
	// (where bbolt's checker stops with a panic on some damage) and bytes
	// spread over the file.
	const page = 4096
	var offsets []int
	for p := 0; p*page < len(good) && len(offsets) < 60; p++ {
		offsets = append(offsets, p*page+(p%16), p*page+page/2+p)
	}
	caught := 0
	for i, at := range offsets {
		c := slices.Clone(good)
		c[at] ^= 1 << (i % 8)
		out, code := verify(write("flip.db", c, false))
		switch {
		case code == 1:
			caught++
		case code != 0 || strings.Contains(out, "goroutine "):
			t.Errorf("--verify with byte %d flipped: exit %d, want 0 or 1 and no crash\n%s", at, code, out)
		}
	}
	t.Logf("without a checksum, %d of %d single-bit flips were caught by structure alone", caught, len(offsets))
}

func TestBackupOnPostgresPointsToPgDump(t *testing.T) {
	cfg := writeConfig(t, `{"store": "postgres://postern@127.0.0.1:1/postern?sslmode=disable",
  "clients": [{"client_id": "c", "client_secret": "dev-secret-dev-secret", "grant_types": ["client_credentials"], "scope": "read"}]}`)
	out := filepath.Join(t.TempDir(), "x.db")
	_, stderr, code := runPostern(t, "", "backup", "--config", cfg, "--out", out)
	if code != 1 || !strings.Contains(stderr, "pg_dump") {
		t.Errorf("backup of a PostgreSQL server: exit %d, want 1 pointing to pg_dump:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a file was written anyway")
	}
}

func TestBackupWithoutServer(t *testing.T) {
	cfg, _ := ccConfig(t, "opaque")
	_, stderr, code := runPostern(t, "", "backup", "--config", writeConfig(t, cfg), "--data", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x.db"))
	if code != 1 || !strings.Contains(stderr, "no running postern serve") {
		t.Errorf("backup with no server: exit %d\n%s", code, stderr)
	}
}

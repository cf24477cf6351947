package test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/postern-auth/postern/test/syncfs"
)

// TestPowerCutLosesNoIssuedToken runs the server on a syncfs data
// directory, kills it under load, and restarts it on only what it had
// fsynced: what a machine that lost power would find on its disk. Every
// token whose answer arrived must be active there. TestCrashLosesNoIssuedToken
// cannot see a store that stops syncing (SIGKILL keeps the page cache);
// this test can.
func TestPowerCutLosesNoIssuedToken(t *testing.T) {
	if err := syncfs.Usable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the power-cut test needs FUSE in CI: %v", err)
		}
		t.Skipf("skipping the power-cut test: %v", err)
	}
	base := t.TempDir()
	live, durable, data := filepath.Join(base, "live"), filepath.Join(base, "durable"), filepath.Join(base, "data")
	for _, d := range []string{live, durable, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := syncfs.Mount(data, live, durable)
	if err != nil {
		t.Fatal(err)
	}
	mounted := true
	// Registered before the server's cleanup, so it runs after the
	// server is killed (cleanups run last-in first-out).
	t.Cleanup(func() {
		if mounted {
			if err := fsys.Unmount(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	cfg, secret := ccConfig(t, "opaque")
	f := &ccFixture{srv: startServer(t, writeConfig(t, cfg), data), billingSecret: secret}
	load := startTokenLoad(f, 4)
	load.waitFor(t, 200)
	f.srv.Kill() // the power goes while the workers are still asking
	got := load.end()
	t.Logf("%d tokens fully received before the cut", len(got))

	if err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	mounted = false
	// The cut: the data directory is now only what was fsynced.
	if err := os.Remove(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(durable, data); err != nil {
		t.Fatal(err)
	}

	g := f.restart(t)
	toks := make([]issued, len(got))
	for i, tk := range got {
		toks[i] = tk.issued
	}
	checkAllActive(t, g, toks)
}

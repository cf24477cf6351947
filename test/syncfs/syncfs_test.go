package syncfs

import (
	"os"
	"path/filepath"
	"testing"
)

// mount mounts a syncfs on fresh directories; the caller unmounts it.
func mount(t *testing.T) (fsys *FS, mnt, durable string) {
	t.Helper()
	if err := Usable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("syncfs needs FUSE in CI: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	base := t.TempDir()
	mnt, live, durable := filepath.Join(base, "mnt"), filepath.Join(base, "live"), filepath.Join(base, "durable")
	for _, d := range []string{mnt, live, durable} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := Mount(mnt, live, durable)
	if err != nil {
		t.Fatal(err)
	}
	return fsys, mnt, durable
}

func write(t *testing.T, path, content string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestOnlyFsyncedSurvives drives the model of the package comment through
// the mount, then compares what survives the cut with what was promised.
func TestOnlyFsyncedSurvives(t *testing.T) {
	fsys, mnt, durable := mount(t)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			fsys.Unmount()
		}
	})

	write(t, filepath.Join(mnt, "synced"), "kept", true)
	write(t, filepath.Join(mnt, "unsynced"), "lost", false)
	write(t, filepath.Join(mnt, "synced"), "kept, then overwritten without fsync", false)
	// The atomic-replace idiom: write, fsync, rename, fsync the directory.
	write(t, filepath.Join(mnt, "config.tmp"), "new config", true)
	if err := os.Rename(filepath.Join(mnt, "config.tmp"), filepath.Join(mnt, "config")); err != nil {
		t.Fatal(err)
	}
	// Created and unlinked, each time the directory is synced after.
	write(t, filepath.Join(mnt, "gone"), "x", true)
	if err := os.Mkdir(filepath.Join(mnt, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	if err := os.Remove(filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "sub", "late"), "not synced", false)
	syncDir(t, mnt)
	// A rename no fsync followed is lost.
	if err := os.Rename(filepath.Join(mnt, "config"), filepath.Join(mnt, "config.old")); err != nil {
		t.Fatal(err)
	}

	if err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	mounted = false
	want := map[string]string{
		"synced": "kept",
		// "unsynced" was created, but the directory sync that made its
		// name durable did not make its content durable.
		"unsynced": "",
		"config":   "new config",
	}
	got := map[string]string{}
	entries, err := os.ReadDir(durable)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			got[e.Name()+"/"] = ""
			continue
		}
		b, err := os.ReadFile(filepath.Join(durable, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	want["sub/"] = ""
	if len(got) != len(want) {
		t.Errorf("durable holds %q, want %q", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("durable %s = %q (present %v), want %q", k, g, ok, v)
		}
	}
	if _, err := os.Stat(filepath.Join(durable, "sub", "late")); !os.IsNotExist(err) {
		t.Errorf("sub/late survived without any fsync of it or sub (%v)", err)
	}
}

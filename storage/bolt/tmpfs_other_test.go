//go:build !linux

package bolt

import "testing"

func mountTmpfs(t *testing.T, _ string) string {
	t.Skip("tmpfs tests run on Linux only")
	return ""
}

func fillDisk(t *testing.T, _ string) func() {
	t.Skip("tmpfs tests run on Linux only")
	return nil
}

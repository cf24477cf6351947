package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// TestWriteErr: a full disk or quota is storage.ErrNoSpace (and so
// ErrUnavailable), whatever bbolt wrapped it in; other failures are not.
func TestWriteErr(t *testing.T) {
	pathErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "write", Path: "postern.db", Err: errno} }
	for _, c := range []struct {
		name    string
		err     error
		noSpace bool
	}{
		{"nil", nil, false},
		{"ENOSPC", pathErr(syscall.ENOSPC), true},
		{"EDQUOT", pathErr(syscall.EDQUOT), true},
		{"ENOSPC from fdatasync", syscall.ENOSPC, true},
		{"wrapped ENOSPC", fmt.Errorf("commit: %w", pathErr(syscall.ENOSPC)), true},
		{"EIO", pathErr(syscall.EIO), false},
		{"EROFS", pathErr(syscall.EROFS), false},
		{"outcome", storage.ErrNotFound, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := writeErr(c.err)
			if errors.Is(got, storage.ErrNoSpace) != c.noSpace || errors.Is(got, storage.ErrUnavailable) != c.noSpace {
				t.Errorf("writeErr(%v) = %v; ErrNoSpace/ErrUnavailable %v, want %v", c.err, got, errors.Is(got, storage.ErrNoSpace), c.noSpace)
			}
			if !errors.Is(got, c.err) {
				t.Errorf("writeErr(%v) = %v, which lost the original error", c.err, got)
			}
		})
	}
}

// TestDiskFull runs the store on a small tmpfs and fills it: writes fail
// with ErrNoSpace, reads go on, and once space returns the same writes
// succeed without reopening; what was acknowledged before is all there.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	s := openTest(t, filepath.Join(dir, "postern.db"), Options{SweepInterval: -1})
	defer closeTest(t, s)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for i := range 20 {
		if err := s.CreateToken(ctx, testToken(fmt.Sprintf("before-%d", i), "alice", exp)); err != nil {
			t.Fatalf("CreateToken before the disk fills: %v", err)
		}
	}
	code := testToken("code", "alice", exp)
	code.Kind = storage.AuthorizationCode
	if err := s.CreateToken(ctx, code); err != nil {
		t.Fatal(err)
	}

	free := fillDisk(t, dir)
	// Write until a write fails: the filler may leave a page or two.
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = s.CreateToken(ctx, testToken(fmt.Sprintf("during-%d", i), "alice", exp))
	}
	if !errors.Is(err, storage.ErrNoSpace) || !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("CreateToken on a full disk = %v, want ErrNoSpace", err)
	}
	issued := testToken("issued-for-code", "alice", exp)
	if _, err := s.Redeem(ctx, code.Kind, code.Signature, []storage.Token{issued}, nil); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("Redeem on a full disk = %v, want ErrNoSpace", err)
	}
	if _, err := s.GetToken(ctx, storage.AccessToken, "before-0"); err != nil {
		t.Errorf("GetToken on a full disk: %v", err)
	}

	free()
	if _, err := s.Redeem(ctx, code.Kind, code.Signature, []storage.Token{issued}, nil); err != nil {
		t.Fatalf("Redeem once space returned: %v (the failed redemption must not have used the code)", err)
	}
	if err := s.CreateToken(ctx, testToken("after", "alice", exp)); err != nil {
		t.Fatalf("CreateToken once space returned: %v", err)
	}
	for i := range 20 {
		if _, err := s.GetToken(ctx, storage.AccessToken, fmt.Sprintf("before-%d", i)); err != nil {
			t.Errorf("acknowledged token before-%d: %v", i, err)
		}
	}
	if _, err := s.GetToken(ctx, storage.AccessToken, issued.Signature); err != nil {
		t.Errorf("token issued for the code: %v", err)
	}
}

// Package syncfs is a FUSE file system for power-cut tests: it writes
// through to one directory (live) and copies to a second one (durable) only
// what a program made durable with fsync. After the program is killed and
// the file system unmounted, durable holds what a machine that lost power at
// that moment would find on its disk; live holds what the page cache had.
//
// The model is deliberately simple, roughly what Linux file systems promise:
//
//   - fsync or fdatasync of a file copies its whole current content (so its
//     size too) to durable, under its current name; that name becomes
//     durable with it (a file created or renamed and then fsynced is found
//     after the cut under that name, and not under an older one), and so do
//     the directories leading to it.
//   - fsync of a directory makes its entries durable: names gone from it are
//     removed, a renamed file takes its new name with whatever content was
//     durable under the old one, a name that never held fsynced content
//     becomes an empty file, and subdirectories are created.
//   - Nothing else reaches durable: writes, creates, unlinks and renames
//     that no fsync followed are lost in the cut.
//
// Writes that land between an fsync and the copy it triggers may be copied
// too; a real disk may also have written them, so that is no looser than a
// power cut.
package syncfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Usable says why a FUSE file system cannot be mounted here (nil when it
// can): mounting without fusermount needs root and /dev/fuse.
func Usable() error {
	if os.Geteuid() != 0 {
		return errors.New("mounting FUSE without fusermount needs root")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("no usable /dev/fuse: %w", err)
	}
	return f.Close()
}

// FS is a mounted syncfs.
type FS struct {
	mountpoint, live, durable string
	server                    *fuse.Server

	mu sync.Mutex
	// content maps a path (relative to the root) in durable to the inode
	// number, in live, of the file whose content it holds: how a directory
	// fsync recognises a rename.
	content map[string]uint64
}

// Mount mounts at mountpoint a syncfs over the existing directories live
// and durable (which should start as copies of each other, empty being
// simplest).
func Mount(mountpoint, live, durable string) (*FS, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(live, &st); err != nil {
		return nil, fmt.Errorf("syncfs: stat %s: %w", live, err)
	}
	f := &FS{mountpoint: mountpoint, live: live, durable: durable, content: map[string]uint64{}}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: &fs.LoopbackRoot{Path: live, Dev: st.Dev}}, fsys: f}
	root.RootData.RootNode = root
	server, err := fs.Mount(mountpoint, root, &fs.Options{MountOptions: fuse.MountOptions{
		FsName: "syncfs",
		Name:   "syncfs",
		// mount(2) directly: fusermount is often not installed, and the
		// caller is root anyway (see Usable).
		DirectMountStrict: true,
	}})
	if err != nil {
		return nil, fmt.Errorf("syncfs: mount %s: %w", mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Unmount unmounts the file system; the processes that used it must have
// ended (or closed their files).
func (f *FS) Unmount() error {
	if err := f.server.Unmount(); err != nil {
		return fmt.Errorf("syncfs: unmount %s: %w", f.mountpoint, err)
	}
	f.server.Wait()
	return nil
}

// inode is the live inode number of path, which must exist.
func inode(path string) (uint64, os.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, nil, fmt.Errorf("no inode number for %s", path)
	}
	return st.Ino, fi, nil
}

// syncFile makes the file at rel durable: content, size and name.
func (f *FS) syncFile(rel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, _, err := inode(filepath.Join(f.live, rel))
	if err != nil {
		return err
	}
	dst := filepath.Join(f.durable, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(f.live, rel), dst); err != nil {
		return err
	}
	// The name fsynced is the file's only durable one.
	for p, i := range f.content {
		if i == ino && p != rel {
			if err := os.Remove(filepath.Join(f.durable, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			delete(f.content, p)
		}
	}
	f.content[rel] = ino
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes the entries of the directory at rel durable.
func (f *FS) syncDir(rel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	liveDir, durDir := filepath.Join(f.live, rel), filepath.Join(f.durable, rel)
	if err := os.MkdirAll(durDir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(liveDir)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		keep[name] = true
		p := filepath.Join(rel, name)
		ino, fi, err := inode(filepath.Join(liveDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // unlinked while we looked
		} else if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := os.MkdirAll(filepath.Join(f.durable, p), 0o700); err != nil {
				return err
			}
			continue
		}
		if !fi.Mode().IsRegular() || f.content[p] == ino {
			continue
		}
		renamed := false
		for q, i := range f.content {
			if i == ino {
				if err := os.Rename(filepath.Join(f.durable, q), filepath.Join(f.durable, p)); err != nil {
					return err
				}
				delete(f.content, q)
				renamed = true
				break
			}
		}
		if !renamed {
			// Created (or replaced) but never fsynced: the name
			// survives, the content does not.
			if err := os.WriteFile(filepath.Join(f.durable, p), nil, 0o600); err != nil {
				return err
			}
		}
		f.content[p] = ino
	}
	durEntries, err := os.ReadDir(durDir)
	if err != nil {
		return err
	}
	for _, e := range durEntries {
		if keep[e.Name()] {
			continue
		}
		p := filepath.Join(rel, e.Name())
		if err := os.RemoveAll(filepath.Join(f.durable, p)); err != nil {
			return err
		}
		for q := range f.content {
			if q == p || filepath.Dir(q) == p || len(q) > len(p) && q[:len(p)+1] == p+string(filepath.Separator) {
				delete(f.content, q)
			}
		}
	}
	return nil
}

// node is a loopback node whose fsyncs also copy to durable.
type node struct {
	*fs.LoopbackNode
	fsys *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
)

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fsys: n.fsys}
}

func (n *node) rel() string { return n.Path(n.Root()) }

// Fsync serves fsync and fdatasync of files (directories come through
// their handle's Fsyncdir).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if fy, ok := f.(fs.FileFsyncer); ok {
		if errno := fy.Fsync(ctx, flags); errno != 0 {
			return errno
		}
	}
	if err := n.fsys.syncFile(n.rel()); err != nil {
		return fs.ToErrno(err)
	}
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{inner: h, n: n}, fl, 0
}

// dirHandle is the loopback directory handle with an Fsyncdir that also
// makes the directory's entries durable.
type dirHandle struct {
	inner fs.FileHandle
	n     *node
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	r, ok := d.inner.(fs.FileReaddirenter)
	if !ok {
		return nil, syscall.ENOTSUP
	}
	return r.Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	s, ok := d.inner.(fs.FileSeekdirer)
	if !ok {
		return syscall.ENOTSUP
	}
	return s.Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if s, ok := d.inner.(fs.FileFsyncdirer); ok {
		if errno := s.Fsyncdir(ctx, flags); errno != 0 {
			return errno
		}
	}
	if err := d.n.fsys.syncDir(d.n.rel()); err != nil {
		return fs.ToErrno(err)
	}
	return 0
}

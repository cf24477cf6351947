package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/postern-auth/postern/storage/bolt"
)

// The admin socket is how commands on the same machine reach a running
// server for what must never be on its public listener: today the online
// backup. It is a unix socket in the data directory, mode 0600, so only the
// account the server runs as (and root) can connect; there is no other
// authentication. It exists while `postern serve` runs on a bbolt store.

// adminSocketName is the socket's name inside the data directory.
const adminSocketName = "admin.sock"

// maxSocketPath is the size of sun_path on Linux, terminating NUL included.
const maxSocketPath = 108

const (
	backupPath         = "/backup"
	backupInfoHeader   = "Postern-Backup"        // JSON backupInfo, sent before the file
	backupSHA256Header = "Postern-Backup-Sha256" // trailer: the file's SHA-256, hex
)

// backupInfo describes the copy ahead of its bytes.
type backupInfo struct {
	Store  string    `json:"store"` // path of the live file
	TxID   int       `json:"tx"`
	Size   int64     `json:"size"`
	Tokens int       `json:"tokens"`
	Newest *newestTk `json:"newest,omitempty"`
}

type newestTk struct {
	Kind      string    `json:"kind"`
	RequestID string    `json:"grant"`
	ClientID  string    `json:"client_id"`
	CreatedAt time.Time `json:"created_at"`
}

// startAdmin listens on the admin socket of dataDir. A socket left behind
// by a server that was killed is removed first: the caller holds the
// store's lock, so no other server owns it.
func startAdmin(dataDir string, store *bolt.Store, storePath string, log *slog.Logger) (stop func(), err error) {
	path := filepath.Join(dataDir, adminSocketName)
	if abs, err := filepath.Abs(path); err == nil && len(abs) >= maxSocketPath {
		// A limit of the kernel's sockaddr_un; serving matters more.
		log.Warn("admin socket not started: its path is too long for a unix socket; postern backup will not reach this server (use a shorter data_dir)",
			"path", abs, "limit", maxSocketPath-1)
		return func() {}, nil
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: listen on %s: %w", path, err)
	}
	// The data directory is 0700 already; this holds when it is not.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: chmod %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+backupPath, backupHandler(store, storePath, log))
	// No write timeout: a backup streams for as long as the file needs.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	log.Info("admin socket ready", "path", path)
	return func() {
		// Close, not Shutdown: a backup in flight is cut and its client
		// reports a short copy; the store is about to close under it.
		_ = hs.Close()
		<-done
	}, nil
}

// backupHandler streams a consistent copy of the store: one read
// transaction, described in a header, then its bytes, then their SHA-256
// in a trailer so the client can tell a complete copy from a cut one.
func backupHandler(store *bolt.Store, storePath string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Trailer", backupSHA256Header)
		var info backupInfo
		var sum hash.Hash
		err := store.Snapshot(r.Context(), func(s *bolt.Snapshot) error {
			info = backupInfo{Store: storePath, TxID: s.TxID, Size: s.Size, Tokens: s.Tokens}
			if s.Tokens > 0 {
				n := s.Newest
				info.Newest = &newestTk{Kind: string(n.Kind), RequestID: n.RequestID, ClientID: n.ClientID, CreatedAt: n.CreatedAt}
			}
			head, err := json.Marshal(info)
			if err != nil {
				return err
			}
			w.Header().Set(backupInfoHeader, string(head))
			w.Header().Set("Content-Type", "application/octet-stream")
			sum = sha256.New()
			_, err = s.WriteTo(io.MultiWriter(w, sum))
			return err
		})
		if err != nil {
			// Before the first byte this becomes a 500; after it, the
			// missing trailer tells the client the copy is incomplete.
			log.Error("backup failed", "error", err)
			if sum == nil {
				http.Error(w, "backup failed: "+err.Error(), http.StatusInternalServerError)
			}
			return
		}
		w.Header().Set(backupSHA256Header, hex.EncodeToString(sum.Sum(nil)))
		log.Info("backup sent", "tx", info.TxID, "bytes", info.Size, "tokens", info.Tokens, "took", time.Since(start).Round(time.Millisecond))
	})
}

// adminClient talks HTTP over the admin socket of dataDir.
func adminClient(dataDir string) *http.Client {
	path := filepath.Join(dataDir, adminSocketName)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
					return nil, fmt.Errorf("no running postern serve on this data directory (%s): %w", path, err)
				}
				return nil, err
			}
			return c, nil
		},
		DisableCompression: true,
	}}
}

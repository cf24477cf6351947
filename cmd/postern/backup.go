package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postern-auth/postern/storage/bolt"
)

const backupUsage = `usage: postern backup --config FILE [--data DIR] --out FILE|-
       postern backup --verify FILE
`

// pgDumpAdvice is the answer on a PostgreSQL store: its own tools already
// do consistent online copies, and the README shows them.
const pgDumpAdvice = `this server keeps its records in PostgreSQL (config "store"): back it up with PostgreSQL's own tools, e.g.
  pg_dump --format=custom --file=postern.dump "$DSN"
and restore with pg_restore (see README, "Backup and restore")`

func runBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	config := fs.String("config", "", "the running server's configuration `file` (its data_dir holds the admin socket)")
	data := fs.String("data", "", "data `directory` (overrides config data_dir, as for serve)")
	out := fs.String("out", "", "write the copy to this `file`, or - for stdout")
	verify := fs.String("verify", "", "check a copy `file` instead of taking one")
	// Internal: the child process that --verify runs the checks in.
	inProcess := fs.Bool("verify-in-process", false, "")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "postern backup: unexpected argument %q\n%s", fs.Arg(0), backupUsage)
		return exitUsage
	}
	switch {
	case *verify != "" && (*config != "" || *out != "" || *data != ""):
		fmt.Fprint(stderr, "postern backup: --verify takes only the copy to check\n", backupUsage)
		return exitUsage
	case *verify != "" && *inProcess:
		boundVerifyMemory(*verify)
		return verifyBackup(*verify, stdout, stderr)
	case *verify != "":
		return verifyInChild(*verify, stdout, stderr)
	case *config == "" || *out == "":
		fmt.Fprint(stderr, "postern backup: --config and --out are required\n", backupUsage)
		return exitUsage
	}
	cfg, err := loadConfig(*config, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "postern backup:", err)
		return exitUsage
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	if cfg.Store != "" {
		fmt.Fprintln(stderr, "postern backup:", pgDumpAdvice)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// With --out -, stdout is the copy: the summary goes to stderr.
	summary := stdout
	if *out == "-" {
		summary = stderr
	}
	res, err := takeBackup(ctx, cfg.DataDir, *out, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "postern backup:", err)
		return exitError
	}
	dest := *out
	if dest == "-" {
		dest = "stdout"
	}
	fmt.Fprintf(summary, "backup of %s (transaction %d) written to %s: %d bytes, %d tokens\n", res.info.Store, res.info.TxID, dest, res.info.Size, res.info.Tokens)
	if n := res.info.Newest; n != nil {
		fmt.Fprintf(summary, "newest token: %s token created %s (grant %s, client %s)\n", n.Kind, n.CreatedAt.UTC().Format(time.RFC3339Nano), n.RequestID, n.ClientID)
	} else {
		fmt.Fprintln(summary, "newest token: none (the store holds no tokens)")
	}
	fmt.Fprintf(summary, "sha256 %s\n", res.sha256)
	return exitOK
}

type backupResult struct {
	info   backupInfo
	sha256 string
}

// takeBackup asks the server on dataDir's admin socket for a copy and
// writes it to out ("-" for stdout). A file is written beside its final
// name and renamed into place only once complete and synced, with its
// SHA-256 in out.sha256 (sha256sum's format), so a cut transfer never
// leaves a file that looks like a backup.
func takeBackup(ctx context.Context, dataDir, out string, stdout io.Writer) (backupResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://postern-admin"+backupPath, nil)
	if err != nil {
		return backupResult{}, err
	}
	resp, err := adminClient(dataDir).Do(req)
	if err != nil {
		return backupResult{}, fmt.Errorf("reach the server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return backupResult{}, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var res backupResult
	if err := json.Unmarshal([]byte(resp.Header.Get(backupInfoHeader)), &res.info); err != nil {
		return backupResult{}, fmt.Errorf("server's %s header: %w", backupInfoHeader, err)
	}
	copyTo := func(w io.Writer) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
		if err != nil {
			return fmt.Errorf("receive the copy after %d bytes: %w", n, err)
		}
		if n != res.info.Size {
			return fmt.Errorf("copy is incomplete: %d of %d bytes", n, res.info.Size)
		}
		res.sha256 = hex.EncodeToString(h.Sum(nil))
		if got := resp.Trailer.Get(backupSHA256Header); got != res.sha256 {
			return fmt.Errorf("copy does not match the server's checksum (server %q, received %s)", got, res.sha256)
		}
		return nil
	}
	if out == "-" {
		return res, copyTo(stdout)
	}
	if err := writeFileAtomic(out, copyTo); err != nil {
		return backupResult{}, err
	}
	sidecar := fmt.Sprintf("%s  %s\n", res.sha256, filepath.Base(out))
	if err := writeFileAtomic(out+".sha256", func(w io.Writer) error { _, err := io.WriteString(w, sidecar); return err }); err != nil {
		return backupResult{}, err
	}
	return res, nil
}

// writeFileAtomic writes path through fill into a temporary file beside it,
// syncs it, renames it into place and syncs the directory.
func writeFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// verifyInChild runs the checks in a child process: bbolt's checker stops
// on some kinds of damage with a panic in a goroutine of its own, which no
// recover can catch; a child that dies that way is a damaged copy, told as
// such, rather than a crash of this command.
func verifyInChild(path string, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "postern backup --verify:", err)
		return exitError
	}
	fi, err := os.Stat(path)
	if err != nil {
		fmt.Fprintln(stderr, "postern backup --verify:", err)
		return exitError
	}
	// A bound in case damage sends bbolt's checker round a loop the page
	// scan did not foresee: a minute, plus a second per 10 MB (the checks
	// read far faster than that).
	limit := time.Minute + time.Duration(fi.Size()/(10<<20))*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var childErr strings.Builder
	cmd := exec.CommandContext(ctx, exe, "backup", "--verify-in-process", "--verify", path)
	cmd.Stdout, cmd.Stderr = stdout, &childErr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "postern backup --verify: %s: the checks did not finish within %s; the file is probably damaged\n", path, limit)
		return exitError
	case err == nil:
		fmt.Fprint(stderr, childErr.String())
		return exitOK
	case errors.As(err, &exit) && !strings.Contains(childErr.String(), "goroutine "):
		fmt.Fprint(stderr, childErr.String())
		return exit.ExitCode()
	case errors.As(err, &exit):
		first, _, _ := strings.Cut(strings.TrimSpace(childErr.String()), "\n")
		fmt.Fprintf(stderr, "postern backup --verify: %s is damaged: the bbolt checker stopped on it: %s\n", path, first)
		return exitError
	}
	fmt.Fprintln(stderr, "postern backup --verify:", err)
	return exitError
}

// verifyBackup checks the file's SHA-256 against the sidecar postern backup
// wrote beside it (when there is one: a copy from --out - has none), then
// bbolt's and Postern's own consistency (bolt.Verify).
func verifyBackup(path string, stdout, stderr io.Writer) int {
	bad := false
	sum, err := fileSHA256(path)
	if err != nil {
		fmt.Fprintln(stderr, "postern backup --verify:", err)
		return exitError
	}
	switch want, err := readSidecar(path + ".sha256"); {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stdout, "sha256 %s (no %s.sha256 beside it: checksum not compared)\n", sum, filepath.Base(path))
	case err != nil:
		fmt.Fprintln(stderr, "postern backup --verify:", err)
		bad = true
	case want != sum:
		fmt.Fprintf(stderr, "postern backup --verify: %s has sha256 %s but %s.sha256 says %s: the file changed since the backup\n", path, sum, path, want)
		bad = true
	default:
		fmt.Fprintf(stdout, "sha256 %s matches %s.sha256\n", sum, filepath.Base(path))
	}
	rep, err := bolt.Verify(path)
	if err != nil {
		fmt.Fprintln(stderr, "postern backup --verify:", err)
		for _, p := range rep.Problems {
			fmt.Fprintln(stderr, "  "+p)
		}
		if rep.Missed > 0 {
			fmt.Fprintf(stderr, "  ... and %d more\n", rep.Missed)
		}
		return exitError
	}
	if bad {
		return exitError
	}
	fmt.Fprintf(stdout, "%s: consistent (transaction %d, %d bytes, %d records, %d index entries)\n", path, rep.TxID, rep.Size, rep.Records, rep.Entries)
	return exitOK
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readSidecar reads the hash from a sha256sum-style line.
func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if len(sum) != 64 {
		return "", fmt.Errorf("%s: not a sha256sum line", path)
	}
	return strings.ToLower(sum), nil
}

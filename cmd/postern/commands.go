package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/passhash"
)

func runClients(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, "usage: postern clients secret | postern clients hash\n")
		return exitUsage
	}
	switch args[0] {
	case "secret":
		secret, err := clients.GenerateClientSecret()
		if err != nil {
			fmt.Fprintln(stderr, "postern clients secret:", err)
			return exitError
		}
		hash, err := clients.HashClientSecret(secret)
		if err != nil {
			fmt.Fprintln(stderr, "postern clients secret:", err)
			return exitError
		}
		fmt.Fprintf(stdout, "client_secret:      %s\nclient_secret_hash: %s\n", secret, hash)
		fmt.Fprintln(stderr, "Give the secret to the client once; put only the hash in the configuration.")
		return exitOK
	case "hash":
		secret, err := readSecret(stdin, stderr, "Client secret: ")
		if err != nil {
			fmt.Fprintln(stderr, "postern clients hash:", err)
			return exitError
		}
		hash, err := clients.HashChosenSecret(secret)
		if err != nil {
			fmt.Fprintln(stderr, "postern clients hash:", err)
			return exitError
		}
		fmt.Fprintln(stdout, hash)
		return exitOK
	}
	fmt.Fprintf(stderr, "postern clients: unknown subcommand %q\n", args[0])
	return exitUsage
}

func runUsers(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "hash" {
		fmt.Fprint(stderr, "usage: postern users hash   (reads the password from the terminal or stdin)\n")
		return exitUsage
	}
	pw, err := readSecret(stdin, stderr, "Password: ")
	if err != nil {
		fmt.Fprintln(stderr, "postern users hash:", err)
		return exitError
	}
	hash, err := passhash.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "postern users hash:", err)
		return exitError
	}
	fmt.Fprintln(stdout, hash)
	return exitOK
}

// readSecret reads one line without echo from a terminal, or the first line
// of piped input, so secrets never pass through argv or shell history.
func readSecret(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read from terminal: %w", err)
		}
		return checkSecretInput(string(b))
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return checkSecretInput(strings.TrimRight(line, "\r\n"))
}

func checkSecretInput(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty input; nothing to hash")
	}
	return s, nil
}

func runKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "list") {
		fmt.Fprint(stderr, "usage: postern keys rotate|list --config FILE [--data DIR] [--secret-file FILE]\n")
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	log, err := newLogger(stderr, f.logFormat, "warn")
	if err != nil {
		fmt.Fprintln(stderr, "postern keys:", err)
		return exitUsage
	}
	cfg, err := loadServeConfig(&f)
	if err != nil {
		fmt.Fprintln(stderr, "postern keys:", err)
		return exitUsage
	}
	ctx := context.Background()
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "postern keys:", err)
		return exitError
	}
	defer store.Close()
	if sub == "rotate" {
		if err := checkSharedSecret(cfg, f.secretFile); err != nil {
			fmt.Fprintln(stderr, "postern keys rotate:", err)
			return exitError
		}
		secret, err := keys.LoadSecret(os.Getenv("POSTERN_SECRET"), f.secretFile, cfg.DataDir, log)
		if err != nil {
			fmt.Fprintln(stderr, "postern keys rotate:", err)
			return exitError
		}
		kid, err := keys.Rotate(ctx, store, secret, keys.Options{Algorithm: cfg.KeyAlgorithm, Overlap: cfg.KeyOverlap})
		if err != nil {
			fmt.Fprintln(stderr, "postern keys rotate:", err)
			return exitError
		}
		fmt.Fprintf(stdout, "new active key %s; the previous key stays published for %s\n", kid, cfg.KeyOverlap)
		return exitOK
	}
	infos, err := keys.List(ctx, store)
	if err != nil {
		fmt.Fprintln(stderr, "postern keys list:", err)
		return exitError
	}
	for _, k := range infos {
		state := "active"
		if !k.Active {
			state = "retiring " + k.RetireAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s\t%s\tcreated %s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.UTC().Format(time.RFC3339), state)
	}
	return exitOK
}

// Command postern is the Postern authorization server and its gateway
// sidecar in one binary. This package owns flags, subcommands and the
// process lifecycle; everything else is passed in as configuration.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `postern: an OAuth 2.0 authorization server

Usage:
  postern serve --config FILE [--addr HOST:PORT] [--issuer URL] [--data DIR]
                [--store postgres://...] [--secret-file FILE]
                [--log-format text|json] [--log-level LEVEL] [--pprof HOST:PORT]
  postern gateway --config FILE [--log-format text|json] [--log-level LEVEL]
  postern check [--config FILE]... [--gateway-config FILE]...
                                validate configuration files without starting anything (exit 2 if one is bad)
  postern clients secret        print a new client secret and its client_secret_hash
  postern clients hash          hash a human-chosen client secret read from stdin (argon2id)
  postern users hash            hash a password read from the terminal or stdin (argon2id)
  postern keys rotate --config FILE [--data DIR | --store URL] [--secret-file FILE]
  postern keys list   --config FILE [--data DIR | --store URL]
  postern migrate [--config FILE] [--store URL]
                                apply pending PostgreSQL schema migrations
  postern backup --config FILE [--data DIR] --out FILE|-
                                copy the running server's bbolt store (online, consistent)
  postern backup --verify FILE  check a copy (checksum, bbolt and Postern's indexes)
  postern healthcheck URL       exit 0 if URL (a /healthz) answers 200: for container health checks
  postern version               the module version and the commit it was built from
  postern help

The system secret comes from POSTERN_SECRET (at least 32 bytes) or
--secret-file; without either, one is generated into the data directory
(development only; refused with a shared PostgreSQL store, where every
replica needs the same secret).
`

// quickstartHint ends the usage block of a bare `postern`: the one command
// a newcomer needs first.
const quickstartHint = `
New here? From a clone of the repository, start the quickstart server:
  postern serve --config examples/quickstart/postern.json
and follow "A tour of the flows" in README.md.
`

// commandUsage is the usage line(s) of one long-running command, taken
// from the top-level block so the two never disagree.
func commandUsage(name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(line, "  postern "+name+" "):
			in = true
		case in && !strings.HasPrefix(line, "        "):
			return b.String()
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage+quickstartHint)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		setMemoryLimit()
		return runServe(args[1:], stdout, stderr)
	case "gateway":
		return runGateway(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "clients":
		return runClients(args[1:], stdin, stdout, stderr)
	case "users":
		return runUsers(args[1:], stdin, stdout, stderr)
	case "keys":
		return runKeys(args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(args[1:], stdout, stderr)
	case "backup":
		return runBackup(args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "postern", versionString())
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "postern: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// versionString is the module version and, when the build recorded it,
// the commit: "v1.2.0 (commit 0123abcd…)", enough to tell which code a bug
// report is about.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(bi, version)
}

// formatVersion reads bi (nil when the binary carries none); override, from
// -ldflags "-X main.version=…", replaces the module version.
func formatVersion(bi *debug.BuildInfo, override string) string {
	v, commit, dirty := "dev", "", false
	if bi != nil {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if override != "" {
		v = override
	}
	switch {
	case commit == "":
		return v
	case dirty:
		return v + " (commit " + commit + ", modified)"
	}
	return v + " (commit " + commit + ")"
}

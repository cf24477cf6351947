// Command load is Postern's load benchmark. It builds the real postern
// binary, starts it on a fresh data directory for each scenario, drives it
// with a closed-loop load generator (N workers, each sending its next request
// as soon as the previous answer arrived, over one keep-alive transport) and
// measures the same way, in the same run, the baselines every figure is
// compared to:
//
//	go run ./test/load -scenario all -duration 10s -concurrency 32 [-warmup 2s] [-json FILE] [-profile DIR]
//
// Scenarios (each against its own freshly started server process):
//
//	cc-token    client credentials, opaque access token, fsync on      (vs bare-bolt)
//	jwt-token   client credentials, JWT access token (RFC 9068)         (vs bare-bolt)
//	refresh     one-time refresh rotation, one chain per worker         (vs bare-bolt)
//	introspect  one opaque token introspected by an authenticated client (vs bare-http)
//	gateway     postern gateway with a cached token, to an echo backend  (vs bare-proxy)
//	bare-http   net/http answering a fixed JSON body
//	bare-bolt   net/http doing one bbolt Batch put of 200 random bytes (32-byte random key), fsync on
//	bare-proxy  httputil.ReverseProxy to the same echo backend as gateway
//
// The baselines run in child processes too (this command re-executes itself
// with the hidden -serve-baseline flag), so they pay the same process and
// loopback costs as postern and their RSS is measured the same way. The echo
// backend is examples/echo-backend, built and started once per run.
//
// With -profile DIR, each postern serve is started with --pprof 127.0.0.1:0
// and a CPU profile of (up to) 5s of its measured phase is written to
// DIR/<scenario>.pprof; read it with `go tool pprof -top DIR/cc-token.pprof`.
// Profiling costs the server a little CPU: take the table from a run
// without it.
//
// Selecting a scenario also runs its baseline: a figure is only ever reported
// as a ratio to a baseline measured on the same machine in the same run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the load command's flags.
type options struct {
	scenarios   []string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	jsonPath    string
	profileDir  string
	// profileSeconds caps the CPU profile length (5s; shorter runs get less).
	profileSeconds int
	progress       io.Writer
	// postgres is the DSN of the pg-* scenarios' database ("" skips them).
	postgres string
}

// childOptions are the hidden flags of a baseline child process.
type childOptions struct {
	kind     string // bare-http, bare-bolt, bare-proxy
	dataDir  string
	upstream string
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	opts, child, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if child != nil {
		if err := serveBaseline(ctx, *child, stdout); err != nil {
			fmt.Fprintln(stderr, "load -serve-baseline:", err)
			return 1
		}
		return 0
	}
	opts.progress = stderr
	rep, err := run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	fmt.Fprint(stdout, rep.Markdown())
	if opts.jsonPath != "" {
		if err := rep.WriteJSON(opts.jsonPath); err != nil {
			fmt.Fprintln(stderr, "load:", err)
			return 1
		}
		fmt.Fprintf(stderr, "load: wrote %s\n", opts.jsonPath)
	}
	if rep.Flagged() {
		fmt.Fprintln(stderr, "load: some scenarios had errors or failed; see the table")
		return 1
	}
	return 0
}

// parseFlags returns the options of a load run, or the child options when
// this process is a baseline server started by a load run.
func parseFlags(args []string, stderr io.Writer) (*options, *childOptions, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		scenario = fs.String("scenario", "all", "comma-separated scenarios, or all: "+strings.Join(allScenarios, ", "))
		o        = &options{profileSeconds: 5}
		c        childOptions
	)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up time per scenario, not measured")
	fs.IntVar(&o.concurrency, "concurrency", 32, "closed-loop workers (and keep-alive connections)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to `file`")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("POSTERN_TEST_POSTGRES_DSN"), "PostgreSQL `DSN` for the pg-* scenarios (two replicas on one database); they are skipped without one")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of each postern scenario's measured phase to `dir`/<scenario>.pprof")
	// Hidden: this binary serving a baseline for a load run.
	fs.StringVar(&c.kind, "serve-baseline", "", "")
	fs.StringVar(&c.dataDir, "baseline-data", "", "")
	fs.StringVar(&c.upstream, "baseline-upstream", "", "")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./test/load -scenario all -duration 10s -concurrency 32 [-warmup 2s] [-json FILE] [-profile DIR]")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage != "" {
				name, usage := flag.UnquoteUsage(f)
				fmt.Fprintf(stderr, "  -%s %s\n    \t%s\n", f.Name, name, usage)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.kind != "" {
		if !slices.Contains(baselineKinds, c.kind) {
			return nil, nil, fmt.Errorf("-serve-baseline: unknown baseline %q", c.kind)
		}
		return nil, &c, nil
	}
	switch {
	case o.duration <= 0:
		return nil, nil, errors.New("-duration must be positive")
	case o.warmup < 0:
		return nil, nil, errors.New("-warmup must not be negative")
	case o.concurrency < 1:
		return nil, nil, errors.New("-concurrency must be at least 1")
	}
	names, err := selectScenarios(*scenario)
	if err != nil {
		return nil, nil, err
	}
	o.scenarios = names
	return o, nil, nil
}

// selectScenarios expands "all" and adds each chosen scenario's baseline,
// keeping the canonical order (each baseline just before its scenarios).
func selectScenarios(s string) ([]string, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			for _, n := range allScenarios {
				want[n] = true
			}
		case scenarioBaseline[name] != "" || slices.Contains(baselineKinds, name):
			want[name] = true
			if b := scenarioBaseline[name]; b != "" {
				want[b] = true
			}
		default:
			return nil, fmt.Errorf("-scenario: unknown scenario %q (have %s)", name, strings.Join(allScenarios, ", "))
		}
	}
	var out []string
	for _, n := range allScenarios {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

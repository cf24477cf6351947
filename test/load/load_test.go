package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the load command when it
// re-executes itself to serve a baseline.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.TrimLeft(os.Args[1], "-") == "serve-baseline" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestAllScenariosBriefly runs every scenario for a fraction of a second so
// the harness cannot rot. It asserts that the numbers are sane, never how
// fast anything is.
func TestAllScenariosBriefly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RSS is read from /proc: Linux only")
	}
	opts, child, err := parseFlags([]string{"-scenario", "all", "-duration", "300ms", "-warmup", "100ms", "-concurrency", "4",
		"-json", filepath.Join(t.TempDir(), "load.json"), "-profile", t.TempDir()}, testLog{t})
	if err != nil || child != nil {
		t.Fatalf("parseFlags: %v, %v", err, child)
	}
	opts.progress = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	t.Logf("\n%s", md)

	if len(rep.Results) != len(allScenarios) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(allScenarios))
	}
	for _, res := range rep.Results {
		if !strings.Contains(md, "| "+res.Scenario+" ") {
			t.Errorf("table has no row for %s", res.Scenario)
		}
		if res.Skipped != "" {
			// Only the PostgreSQL scenarios may be skipped, and only
			// outside CI without a database; they say why.
			pgMissing := strings.HasPrefix(res.Scenario, "pg-") && os.Getenv("CI") == "" && opts.postgres == ""
			if !pgMissing {
				t.Errorf("%s skipped: %s", res.Scenario, res.Skipped)
			}
			t.Logf("%s skipped: %s", res.Scenario, res.Skipped)
			continue
		}
		if res.Failed != "" {
			t.Errorf("%s failed: %s", res.Scenario, res.Failed)
			continue
		}
		l := res.LatencyUS
		switch {
		case res.Requests <= 0 || res.ReqPerSec <= 0:
			t.Errorf("%s: %d requests, %.1f req/s", res.Scenario, res.Requests, res.ReqPerSec)
		case res.Errors != 0 || res.WarmupErrors != 0:
			t.Errorf("%s: %d errors (+%d in warm-up); first: %s", res.Scenario, res.Errors, res.WarmupErrors, res.FirstError)
		case !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max):
			t.Errorf("%s: latencies out of order: %+v", res.Scenario, l)
		case !(res.RSS.IdleMiB > 0 && res.RSS.PeakMiB > 0 && res.RSS.HWMMiB > 0):
			t.Errorf("%s: RSS %+v", res.Scenario, res.RSS)
		}
		if res.Baseline != "" && res.Ratio == nil {
			t.Errorf("%s: no ratio to %s", res.Scenario, res.Baseline)
		}
		if res.Kind == "postern" {
			if fi, err := os.Stat(res.Profile); err != nil || fi.Size() == 0 {
				t.Errorf("%s: no CPU profile (%q): %v", res.Scenario, res.Profile, err)
			}
		}
	}

	if err := rep.WriteJSON(opts.jsonPath); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(opts.jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if len(back.Results) != len(rep.Results) || back.HDRHistogramVersion == "" || back.GOMAXPROCS < 1 {
		t.Errorf("-json output incomplete: %d results, hdrhistogram %q, GOMAXPROCS %d", len(back.Results), back.HDRHistogramVersion, back.GOMAXPROCS)
	}
}

func TestSelectScenariosAddsBaselines(t *testing.T) {
	got, err := selectScenarios("gateway,cc-token")
	if err != nil {
		t.Fatal(err)
	}
	if want := "bare-bolt,cc-token,bare-proxy,gateway"; strings.Join(got, ",") != want {
		t.Errorf("selectScenarios = %v, want %s", got, want)
	}
	if _, err := selectScenarios("cc-tokn"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}

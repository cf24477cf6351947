package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Report is one load run: the machine, the settings, every scenario and the
// issue's targets checked against them. It is also the -json format.
type Report struct {
	Date                string   `json:"date"`
	Commit              string   `json:"commit,omitempty"`
	GoVersion           string   `json:"go_version"`
	OS                  string   `json:"os"`
	CPUModel            string   `json:"cpu_model"`
	NumCPU              int      `json:"num_cpu"`
	GOMAXPROCS          int      `json:"gomaxprocs"`
	Concurrency         int      `json:"concurrency"`
	DurationSeconds     float64  `json:"duration_seconds"`
	WarmupSeconds       float64  `json:"warmup_seconds"`
	HDRHistogramVersion string   `json:"hdrhistogram_version"`
	Results             []Result `json:"results"`
	Targets             []Target `json:"targets"`
}

// Result is one scenario.
type Result struct {
	Scenario string `json:"scenario"`
	Kind     string `json:"kind"`             // postern, gateway or baseline
	Server   string `json:"server,omitempty"` // the process whose RSS and profile these are
	Skipped  string `json:"skipped,omitempty"`
	Failed   string `json:"failed,omitempty"` // could not start, set up or stop cleanly

	Requests     int64   `json:"requests"` // completed in the measured window
	Errors       int64   `json:"errors"`   // of those, transport errors, non-2xx or wrong answers
	WarmupErrors int64   `json:"warmup_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	ReqPerSec    float64 `json:"req_per_sec"`
	LatencyUS    struct {
		P50  int64   `json:"p50"`
		P95  int64   `json:"p95"`
		P99  int64   `json:"p99"`
		Max  int64   `json:"max"`
		Mean float64 `json:"mean"`
	} `json:"latency_us"`
	RSS struct {
		IdleMiB float64 `json:"idle_mib"` // VmRSS after start, before any load
		PeakMiB float64 `json:"peak_mib"` // highest VmRSS sampled every 50ms during warm-up and measurement
		HWMMiB  float64 `json:"hwm_mib"`  // VmHWM at the end: the high-water mark since start
	} `json:"rss"`

	Baseline      string   `json:"baseline,omitempty"`
	Ratio         *float64 `json:"ratio,omitempty"`           // req/s over the baseline's req/s
	P50OverheadUS *int64   `json:"p50_overhead_us,omitempty"` // p50 minus the baseline's p50
	Profile       string   `json:"profile,omitempty"`
	Note          string   `json:"note,omitempty"`
	// LoadAvg1m is the machine's 1-minute load average as the scenario
	// started: other work on a shared machine skews a run.
	LoadAvg1m float64 `json:"loadavg_1m"`
}

// Target is one of the goals, checked.
type Target struct {
	Name    string  `json:"name"`
	Want    string  `json:"want"`
	Got     string  `json:"got"`
	Met     bool    `json:"met"`
	Value   float64 `json:"value"`
	Skipped bool    `json:"skipped,omitempty"`
}

func newReport(opts *options) *Report {
	r := &Report{
		Date:            time.Now().UTC().Format(time.RFC3339),
		GoVersion:       runtime.Version(),
		OS:              runtime.GOOS + "/" + runtime.GOARCH,
		CPUModel:        cpuModel(),
		NumCPU:          runtime.NumCPU(),
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		Concurrency:     opts.concurrency,
		DurationSeconds: opts.duration.Seconds(),
		WarmupSeconds:   opts.warmup.Seconds(),
		Commit:          gitCommit(),
	}
	r.HDRHistogramVersion = "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/HdrHistogram/hdrhistogram-go" {
				r.HDRHistogramVersion = d.Version
			}
		}
	}
	return r
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// gitCommit is the short commit of the working tree, "+dirty" when it has
// changes: results are compared between commits.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

// loadAvg1m reads the 1-minute load average; 0 when unknown.
func loadAvg1m() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

func mib(kib int64) float64 { return round(float64(kib)/1024, 1) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// fill copies a measured phase into the result.
func (res *Result) fill(lr *loadResult) {
	res.Requests = lr.requests
	res.Errors = lr.errors
	res.WarmupErrors = lr.warmupErrors
	res.FirstError = lr.firstError
	res.ReqPerSec = round(float64(lr.requests)/lr.window.Seconds(), 1)
	h := lr.hist
	res.LatencyUS.P50 = h.ValueAtQuantile(50)
	res.LatencyUS.P95 = h.ValueAtQuantile(95)
	res.LatencyUS.P99 = h.ValueAtQuantile(99)
	res.LatencyUS.Max = h.Max()
	res.LatencyUS.Mean = round(h.Mean(), 1)
}

// flagged: the scenario's numbers cannot be trusted as they are.
func (res *Result) flagged() bool {
	return res.Failed != "" || res.Errors > 0 || res.WarmupErrors > 0
}

func (res *Result) summary() string {
	switch {
	case res.Skipped != "":
		return fmt.Sprintf("%s: skipped: %s", res.Scenario, res.Skipped)
	case res.Failed != "" && res.Requests == 0:
		return fmt.Sprintf("%s: FAILED: %s", res.Scenario, res.Failed)
	}
	s := fmt.Sprintf("%s: %.0f req/s, p50 %s ms, p99 %s ms, %d errors, RSS %.1f/%.1f MiB",
		res.Scenario, res.ReqPerSec, ms(res.LatencyUS.P50), ms(res.LatencyUS.P99), res.Errors, res.RSS.IdleMiB, res.RSS.PeakMiB)
	if res.FirstError != "" {
		s += "; first error: " + res.FirstError
	}
	return s
}

func (r *Report) result(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Scenario == name {
			return &r.Results[i]
		}
	}
	return nil
}

func measured(res *Result) bool {
	return res != nil && res.Skipped == "" && res.Failed == "" && res.Requests > 0
}

// finish computes the ratios and checks the targets.
func (r *Report) finish() {
	for i := range r.Results {
		res := &r.Results[i]
		base := r.result(res.Baseline)
		if res.Baseline == "" || !measured(res) || !measured(base) || base.ReqPerSec == 0 {
			continue
		}
		ratio := round(res.ReqPerSec/base.ReqPerSec, 3)
		res.Ratio = &ratio
		if res.Kind == "gateway" {
			d := res.LatencyUS.P50 - base.LatencyUS.P50
			res.P50OverheadUS = &d
		}
	}
	ratioTarget := func(name string, min float64) {
		res := r.result(name)
		if res == nil {
			return
		}
		t := Target{Name: name + "/" + scenarioBaseline[name], Want: fmt.Sprintf("≥ %.0f%%", min*100)}
		switch {
		case res.Ratio == nil:
			t.Skipped, t.Got = true, "not measured"
		default:
			t.Value = *res.Ratio
			t.Got = fmt.Sprintf("%.0f%%", *res.Ratio*100)
			t.Met = *res.Ratio >= min
		}
		r.Targets = append(r.Targets, t)
	}
	ratioTarget("cc-token", 0.50)
	ratioTarget("introspect", 0.40)
	ratioTarget("refresh", 0.35)
	ratioTarget("gateway", 0.70)
	if res := r.result("gateway"); res != nil {
		t := Target{Name: "gateway p50 overhead over bare-proxy", Want: "≤ 150 µs"}
		if res.P50OverheadUS == nil {
			t.Skipped, t.Got = true, "not measured"
		} else {
			t.Value = float64(*res.P50OverheadUS)
			t.Got = fmt.Sprintf("%d µs", *res.P50OverheadUS)
			t.Met = *res.P50OverheadUS <= 150
		}
		r.Targets = append(r.Targets, t)
	}
	// RSS: every process postern ships (serve and gateway).
	var idle, peak float64
	var idleOf, peakOf string
	for _, res := range r.Results {
		if res.Kind == "baseline" || !measured(&res) {
			continue
		}
		if res.RSS.IdleMiB > idle {
			idle, idleOf = res.RSS.IdleMiB, res.Scenario
		}
		if res.RSS.PeakMiB > peak {
			peak, peakOf = res.RSS.PeakMiB, res.Scenario
		}
	}
	if idleOf != "" {
		r.Targets = append(r.Targets,
			Target{Name: "RSS idle (highest of postern's scenarios)", Want: "≤ 30 MiB", Value: idle, Met: idle <= 30,
				Got: fmt.Sprintf("%.1f MiB (%s)", idle, idleOf)},
			Target{Name: "RSS under load (highest peak of postern's scenarios)", Want: "≤ 150 MiB", Value: peak, Met: peak <= 150,
				Got: fmt.Sprintf("%.1f MiB (%s)", peak, peakOf)})
	}
}

// Flagged says some scenario failed or had errors.
func (r *Report) Flagged() bool {
	for i := range r.Results {
		if r.Results[i].flagged() {
			return true
		}
	}
	return false
}

func ms(us int64) string { return fmt.Sprintf("%.3f", float64(us)/1000) }

// Markdown renders the machine line, the table, the targets and any notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	commit := ""
	if r.Commit != "" {
		commit = ", commit " + r.Commit
	}
	fmt.Fprintf(&b, "%s, %s, %s (%d CPUs), GOMAXPROCS %d, %s%s; concurrency %d, warm-up %gs, measured %gs per scenario; hdrhistogram-go %s\n\n",
		r.Date, r.OS, r.CPUModel, r.NumCPU, r.GOMAXPROCS, r.GoVersion, commit,
		r.Concurrency, r.WarmupSeconds, r.DurationSeconds, r.HDRHistogramVersion)
	b.WriteString("| scenario | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | RSS idle / peak / HWM MiB | vs baseline |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	var notes []string
	for _, res := range r.Results {
		name := res.Scenario
		if res.flagged() {
			name += " ⚠"
		}
		if res.Skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped | | | | | | | |\n", name)
			notes = append(notes, fmt.Sprintf("%s skipped: %s", res.Scenario, res.Skipped))
			continue
		}
		if res.Failed != "" {
			notes = append(notes, fmt.Sprintf("%s failed: %s", res.Scenario, firstLine(res.Failed)))
			if res.Requests == 0 {
				fmt.Fprintf(&b, "| %s | failed | | | | | | | |\n", name)
				continue
			}
		}
		vs := ""
		if res.Ratio != nil {
			vs = fmt.Sprintf("%.2f × %s", *res.Ratio, res.Baseline)
			if res.P50OverheadUS != nil {
				vs += fmt.Sprintf(", p50 %+d µs", *res.P50OverheadUS)
			}
		} else if res.Baseline != "" {
			vs = res.Baseline + " not measured"
		}
		errs := fmt.Sprint(res.Errors)
		if res.WarmupErrors > 0 {
			errs += fmt.Sprintf(" (+%d in warm-up)", res.WarmupErrors)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %.1f / %.1f / %.1f | %s |\n",
			name, res.ReqPerSec, ms(res.LatencyUS.P50), ms(res.LatencyUS.P95), ms(res.LatencyUS.P99), ms(res.LatencyUS.Max),
			errs, res.RSS.IdleMiB, res.RSS.PeakMiB, res.RSS.HWMMiB, vs)
		if res.FirstError != "" {
			notes = append(notes, fmt.Sprintf("%s: first error: %s", res.Scenario, firstLine(res.FirstError)))
		}
		if res.Note != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", res.Scenario, res.Note))
		}
	}
	var loads []string
	for _, res := range r.Results {
		if res.Skipped == "" {
			loads = append(loads, fmt.Sprintf("%s %.2f", res.Scenario, res.LoadAvg1m))
		}
	}
	if len(loads) > 0 {
		notes = append(notes, "machine load average (1 min) as each scenario started: "+strings.Join(loads, ", "))
	}
	if len(r.Targets) > 0 {
		b.WriteString("\n| target | want | got | |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			verdict := "missed"
			switch {
			case t.Skipped:
				verdict = "not measured"
			case t.Met:
				verdict = "met"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, verdict)
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The example dashboard and alert rules query metrics by name; a renamed or
// removed metric would leave an empty panel or an alert that never fires,
// silently. These tests hold every name they use to docs/metrics.md, which
// TestMetricsDocumented in turn holds to what the processes expose.

var posternMetric = regexp.MustCompile(`\bpostern_[a-z_]+`)

// histogramSeries are the series suffixes a histogram family adds.
var histogramSeries = []string{"_bucket", "_sum", "_count"}

// monitoringFile reads a file of examples/monitoring.
func monitoringFile(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "monitoring", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// dashboardExprs collects every "expr" of the dashboard's panels and
// template variables, wherever it sits in the JSON.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var dash any
	if err := json.Unmarshal(monitoringFile(t, "postern-dashboard.json"), &dash); err != nil {
		t.Fatalf("postern-dashboard.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	return exprs
}

// alertRules is the part of a Prometheus rule file these tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	var rules alertRules
	if err := yaml.Unmarshal(monitoringFile(t, "alerts.yml"), &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Expr == "" {
				t.Errorf("alerts.yml: rule %q in group %q has no expr", r.Alert, g.Name)
			}
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// documentedFamily maps a series name used in a query to its documented
// family: itself, or for a histogram's _bucket/_sum/_count the histogram.
func documentedFamily(name string, doc map[string]docMetric) (string, bool) {
	if _, ok := doc[name]; ok {
		return name, true
	}
	for _, suffix := range histogramSeries {
		family, cut := strings.CutSuffix(name, suffix)
		if d, ok := doc[family]; cut && ok && d.kind == "histogram" {
			return family, true
		}
	}
	return "", false
}

// checkQueried: every postern_ name in the expressions is documented, and
// returns the families used.
func checkQueried(t *testing.T, what string, exprs []string, doc map[string]docMetric) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range posternMetric.FindAllString(e, -1) {
			family, ok := documentedFamily(name, doc)
			if !ok {
				t.Errorf("%s queries %s, which docs/metrics.md does not list:\n%s", what, name, e)
				continue
			}
			used[family] = true
		}
	}
	return used
}

// allDocMetrics is both processes' tables of docs/metrics.md.
func allDocMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	doc := docMetrics(t, "postern serve")
	for name, d := range docMetrics(t, "postern gateway") {
		doc[name] = d
	}
	return doc
}

func TestMonitoringDashboardMetricsDocumented(t *testing.T) {
	doc := allDocMetrics(t)
	exprs := dashboardExprs(t)
	used := checkQueried(t, "postern-dashboard.json", exprs, doc)
	// The panels the README promises; a panel whose query lost its metric
	// would otherwise pass as "nothing undocumented".
	for _, want := range []string{
		"postern_tokens_issued_total",
		"postern_http_requests_total",
		"postern_http_request_duration_seconds",
		"postern_storage_unavailable_total",
		"postern_acme_certificate_expiry_timestamp_seconds",
		"postern_gateway_requests_total",
		"postern_gateway_token_cache_total",
		"postern_gateway_revocation_feed_connected",
		"postern_gateway_revocation_lag_seconds",
	} {
		if !used[want] {
			t.Errorf("postern-dashboard.json has no panel on %s", want)
		}
	}
	t.Logf("dashboard: %d expressions over %d documented families", len(exprs), len(used))
}

func TestMonitoringAlertsMetricsDocumented(t *testing.T) {
	doc := allDocMetrics(t)
	rules := alertExprs(t)
	names := make([]string, 0, len(rules))
	exprs := make([]string, 0, len(rules))
	for name, e := range rules {
		names = append(names, name)
		exprs = append(exprs, e)
	}
	sort.Strings(names)
	used := checkQueried(t, "alerts.yml", exprs, doc)
	for _, want := range []string{
		"postern_http_requests_total",
		"postern_storage_unavailable_total",
		"postern_acme_certificate_expiry_timestamp_seconds",
		"postern_gateway_revocation_feed_connected",
	} {
		if !used[want] {
			t.Errorf("alerts.yml has no rule on %s", want)
		}
	}
	t.Logf("alerts: %s", strings.Join(names, ", "))
}

// promtool (Debian's prometheus package) checks the rules' syntax, PromQL
// and templates the way Prometheus will load them, then runs
// alerts_test.yml: each alert fires on an incident's series, with the
// labels and text an operator will read, and stays quiet on healthy ones.
func TestMonitoringAlertsPromtool(t *testing.T) {
	requireTools(t, "promtool")
	dir := filepath.Join(repoRoot(t), "examples", "monitoring")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "promtool", args...)
		cmd.Dir = dir // alerts_test.yml names alerts.yml relative to itself
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// grafanaVars stands in for the variables Grafana substitutes before a
// dashboard's query reaches Prometheus.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$job", ".*")

// The dashboard's queries must parse as PromQL too: promtool checks them as
// recording rules, the only offline parser it offers.
func TestMonitoringDashboardPromtool(t *testing.T) {
	requireTools(t, "promtool")
	type record struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []record
	for i, e := range dashboardExprs(t) {
		if strings.HasPrefix(e, "label_values(") {
			continue // a Grafana template function, not PromQL
		}
		rules = append(rules, record{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(e)})
	}
	file := map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}}
	raw, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "promtool", "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries do not parse: %v\n%s\n%s", err, out, raw)
	}
}

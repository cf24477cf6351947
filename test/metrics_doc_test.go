package test

import (
	"bufio"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docMetric is a row of docs/metrics.md.
type docMetric struct{ name, kind, appears string }

var docRow = regexp.MustCompile("^\\| `([a-z_]+)` \\| ([a-z]+) \\| [^|]*\\| ([^|]+) \\|")

// docMetrics reads the table of one section ("postern serve" or "postern
// gateway") of docs/metrics.md.
func docMetrics(t *testing.T, section string) map[string]docMetric {
	t.Helper()
	f, err := os.Open("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]docMetric{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## "+section
			continue
		}
		if m := docRow.FindStringSubmatch(line); in && m != nil {
			out[m[1]] = docMetric{name: m[1], kind: m[2], appears: strings.TrimSpace(m[3])}
		}
	}
	if len(out) == 0 {
		t.Fatalf("docs/metrics.md has no table for %s", section)
	}
	return out
}

var typeLine = regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`)

// scrapeTypes lists the metric families a /metrics page declares.
func scrapeTypes(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	out := map[string]string{}
	for _, m := range typeLine.FindAllStringSubmatch(b.String(), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// checkDocumented: every postern metric exposed is documented with its
// type, and every documented one that is there from the start is exposed.
func checkDocumented(t *testing.T, what string, exposed map[string]string, doc map[string]docMetric) {
	t.Helper()
	for name, kind := range exposed {
		if !strings.HasPrefix(name, "postern_") {
			continue // go_*, process_*: the client library's standard families
		}
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("%s exposes %s, which docs/metrics.md does not document", what, name)
		case d.kind != kind:
			t.Errorf("%s: %s is a %s, documented as a %s", what, name, kind, d.kind)
		}
	}
	for name, d := range doc {
		if _, ok := exposed[name]; !ok && d.appears == "always" {
			t.Errorf("%s: docs/metrics.md says %s is always there, but it is not exposed", what, name)
		}
	}
}

func TestMetricsDocumented(t *testing.T) {
	f := newGWFixture(t, `{}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, withFeedGateway)
	waitFeedConnected(t, gw)
	// Traffic, so that the labelled families have series.
	tok := f.token(t, "billing", "read", "write")
	passes(t, gw, "/billing/x", tok)
	f.revoke(t, tok)
	refusedWithin(t, gw, "/billing/x", tok, feedWithin)

	server := scrapeTypes(t, f.srv.MetricsURL())
	checkDocumented(t, "postern serve", server, docMetrics(t, "postern serve"))
	for _, name := range []string{"postern_http_requests_total", "postern_tokens_issued_total"} {
		if _, ok := server[name]; !ok {
			t.Errorf("postern serve: %s missing after traffic", name)
		}
	}
	gateway := scrapeTypes(t, gw.AdminURL+"/metrics")
	checkDocumented(t, "postern gateway", gateway, docMetrics(t, "postern gateway"))
	for _, name := range []string{"postern_gateway_requests_total", "postern_gateway_introspection_duration_seconds"} {
		if _, ok := gateway[name]; !ok {
			t.Errorf("postern gateway: %s missing after traffic", name)
		}
	}
	// The public port serves no metrics.
	if resp, _ := gwGet(t, f.srv.URL+"/metrics", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the server's public port: %d, want 404", resp.StatusCode)
	}
}

package test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/proto"
)

// recSpan is one span as an OTLP collector received it.
type recSpan struct {
	Service, Name           string
	TraceID, SpanID, Parent string
	Attrs                   map[string]string
}

// otlpReceiver is a minimal OTLP/HTTP collector: it decodes the protobuf
// ExportTraceServiceRequest the exporter posts to /v1/traces.
type otlpReceiver struct {
	URL   string
	mu    sync.Mutex
	spans []recSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want protobuf at /v1/traces", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			t.Errorf("OTLP receiver: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(&req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func (rc *otlpReceiver) add(req *coltrace.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := recSpan{Service: service, Name: s.Name, TraceID: hex.EncodeToString(s.TraceId),
					SpanID: hex.EncodeToString(s.SpanId), Parent: hex.EncodeToString(s.ParentSpanId), Attrs: map[string]string{}}
				for _, a := range s.Attributes {
					sp.Attrs[a.Key] = attrText(a.Value)
				}
				rc.spans = append(rc.spans, sp)
			}
		}
	}
}

// attrText is any attribute value as text, so the secret search sees all.
func attrText(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

func (rc *otlpReceiver) all() []recSpan {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recSpan(nil), rc.spans...)
}

// named returns the spans of service called name.
func named(spans []recSpan, service, name string) []recSpan {
	var out []recSpan
	for _, s := range spans {
		if s.Service == service && s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func one(t *testing.T, spans []recSpan, service, name string) recSpan {
	t.Helper()
	got := named(spans, service, name)
	if len(got) != 1 {
		t.Fatalf("%d spans %s/%s, want 1; all spans:\n%s", len(got), service, name, dumpSpans(spans))
	}
	return got[0]
}

func dumpSpans(spans []recSpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s trace=%s span=%s parent=%s %v\n", s.Service, s.Name, s.TraceID, s.SpanID, s.Parent, s.Attrs)
	}
	return b.String()
}

// noSecrets fails when any attribute value of any span holds one of the
// credentials (or a good part of one).
func noSecrets(t *testing.T, spans []recSpan, secrets map[string]string) {
	t.Helper()
	for what, v := range secrets {
		if len(v) < 8 {
			t.Fatalf("secret %s %q too short to search for", what, v)
		}
		for _, s := range spans {
			for k, a := range s.Attrs {
				if strings.Contains(a, v) || strings.Contains(a, v[:len(v)/2]) {
					t.Errorf("span %s attribute %s holds the %s", s.Name, k, what)
				}
			}
		}
	}
}

func childrenOf(spans []recSpan, parent recSpan, prefix string) []recSpan {
	var out []recSpan
	for _, s := range spans {
		if s.Parent == parent.SpanID && s.TraceID == parent.TraceID && strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// descendantsOf are the spans named prefix* below parent, at any depth
// (fosite opens spans of its own between a handler and the store).
func descendantsOf(spans []recSpan, parent recSpan, prefix string) []recSpan {
	under := map[string]bool{parent.SpanID: true}
	for grew := true; grew; {
		grew = false
		for _, s := range spans {
			if s.TraceID == parent.TraceID && under[s.Parent] && !under[s.SpanID] {
				under[s.SpanID], grew = true, true
			}
		}
	}
	var out []recSpan
	for _, s := range spans {
		if s.SpanID != parent.SpanID && under[s.SpanID] && strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func tracingBlock(rc *otlpReceiver) string {
	return fmt.Sprintf(`"tracing": {"otlp_endpoint": %q, "sample_ratio": 1.0},`, rc.URL)
}

// The spans of one authorization code flow: one per request, named after
// the endpoint, with store calls and the argon2 check as children, the
// outcome and client on the token span, and no credential anywhere. The
// server is stopped first: its exporter must flush on SIGTERM.
func TestTracesOfCodeFlow(t *testing.T) {
	rc := startOTLPReceiver(t)
	cfg, rsSecret := userGrantsConfig(t)
	traced := strings.Replace(cfg, `"tokens": {`, tracingBlock(rc)+` "tokens": {`, 1)
	srv := startServer(t, writeConfig(t, traced), "")
	f := &userFixture{srv: srv, rsPass: rsSecret}

	b := newBrowser(t)
	conf := f.oauthConfig("web", "web-dev-secret-0123456789", "read")
	verifier := oauth2.GenerateVerifier()
	p := b.get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	p = b.login(srv.URL, p, "alice", "alice-password")
	p = b.consent(srv.URL, p, "allow", false)
	code := callback(t, p).Get("code")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	f.introspect(t, tok.AccessToken)
	srvURL, _ := url.Parse(srv.URL)
	var cookies []string
	for _, c := range b.client.Jar.Cookies(srvURL) {
		cookies = append(cookies, c.Value)
	}
	srv.Stop()

	spans := rc.all()
	for _, name := range []string{"authorize", "login", "consent"} {
		if len(named(spans, "postern", name)) == 0 {
			t.Errorf("no %s span; spans:\n%s", name, dumpSpans(spans))
		}
	}
	token := one(t, spans, "postern", "token")
	for k, want := range map[string]string{"oauth.grant_type": "authorization_code", "oauth.client_id": "web", "oauth.outcome": "ok",
		"http.request.method": "POST", "http.response.status_code": "200"} {
		if got := token.Attrs[k]; got != want {
			t.Errorf("token span %s = %q, want %q", k, got, want)
		}
	}
	stores := descendantsOf(spans, token, "store.")
	redeemed := false
	for _, st := range stores {
		redeemed = redeemed || st.Name == "store.Redeem"
	}
	if !redeemed {
		t.Errorf("no store.Redeem span under the token span:\n%s", dumpSpans(spans))
	}
	var argon int
	for _, login := range named(spans, "postern", "login") {
		argon += len(descendantsOf(spans, login, "passhash.argon2id"))
	}
	if argon == 0 {
		t.Errorf("no argon2 check span under a login span:\n%s", dumpSpans(spans))
	}
	in := one(t, spans, "postern", "introspect")
	if in.Attrs["oauth.introspection.active"] != "true" || in.Attrs["oauth.client_id"] != "rs" {
		t.Errorf("introspect span attributes %v, want active and client rs", in.Attrs)
	}
	secrets := map[string]string{"authorization code": code, "access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"client secret": "web-dev-secret-0123456789", "password": "alice-password", "PKCE verifier": verifier, "introspecting client's secret": rsSecret}
	for i, c := range cookies {
		secrets[fmt.Sprintf("cookie %d", i)] = c
	}
	if tok.RefreshToken == "" {
		delete(secrets, "refresh token")
	}
	noSecrets(t, spans, secrets)
}

// One gateway request carries the caller's trace through the gateway, its
// introspection call and the server's introspect handler to the upstream.
func TestTracesThroughGateway(t *testing.T) {
	rc := startOTLPReceiver(t)
	// The fixture writes its tokens object verbatim; the tracing block
	// rides after it.
	f := newGWFixture(t, `{}, `+strings.TrimSuffix(tracingBlock(rc), ","))
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		c["tracing"] = map[string]any{"otlp_endpoint": rc.URL}
	})
	token := f.token(t, "billing", "read", "write")
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	seen := gwSeen(t, gw.URL+"/billing/invoices", token, map[string]string{"Traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	gw.Stop()
	f.srv.Stop()

	spans := rc.all()
	req := one(t, spans, "postern-gateway", "/billing")
	if req.TraceID != callerTrace || req.Parent != callerSpan {
		t.Errorf("gateway span trace %s parent %s, want the caller's %s / %s", req.TraceID, req.Parent, callerTrace, callerSpan)
	}
	for k, want := range map[string]string{"gateway.route": "/billing", "oauth.client_id": "billing", "oauth.outcome": "ok"} {
		if got := req.Attrs[k]; got != want {
			t.Errorf("gateway span %s = %q, want %q", k, got, want)
		}
	}
	call := childrenOf(spans, req, "gateway.introspect")
	if len(call) != 1 {
		t.Fatalf("%d introspection spans under the gateway's request span, want 1:\n%s", len(call), dumpSpans(spans))
	}
	// The gateway checked its credentials at start, in a trace of its own.
	srvIn := childrenOf(spans, call[0], "introspect")
	if len(srvIn) != 1 {
		t.Fatalf("%d server introspect spans under the gateway's introspection call, want 1:\n%s", len(srvIn), dumpSpans(spans))
	}
	if srvIn[0].Service != "postern" || len(descendantsOf(spans, srvIn[0], "store.GetToken")) == 0 {
		t.Errorf("server introspect span %+v: want the server's, with a store.GetToken below", srvIn[0])
	}
	if srvIn[0].Attrs["oauth.client_id"] != "gateway" || srvIn[0].Attrs["oauth.introspection.active"] != "true" {
		t.Errorf("server introspect span attributes %v", srvIn[0].Attrs)
	}
	if want := "00-" + callerTrace + "-" + req.SpanID + "-01"; seen.Headers["traceparent"] != want {
		t.Errorf("upstream got traceparent %q, want %q (the gateway's span in the caller's trace)", seen.Headers["traceparent"], want)
	}
	noSecrets(t, spans, map[string]string{"access token": token, "gateway secret": f.gatewaySecret, "billing secret": f.billingSecret})
}

// Without tracing the gateway passes the caller's traceparent on as it
// came: it is an ordinary header, not one of those the gateway strips.
func TestGatewayForwardsTraceparentWithoutTracing(t *testing.T) {
	f := newGWFixture(t, `{}`)
	backend := startEchoBackend(t)
	gw := f.startGateway(t, backend.URL, nil)
	const tp, ts = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=opaque"
	seen := gwSeen(t, gw.URL+"/billing/x", f.token(t, "billing", "read", "write"), map[string]string{"Traceparent": tp, "Tracestate": ts})
	if seen.Headers["traceparent"] != tp || seen.Headers["tracestate"] != ts {
		t.Errorf("upstream got traceparent %q tracestate %q, want them unchanged", seen.Headers["traceparent"], seen.Headers["tracestate"])
	}
}

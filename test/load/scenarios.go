package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// allScenarios in the order they run: each baseline right before the
// scenarios compared to it, so they see the machine in about the same state.
var allScenarios = []string{"bare-bolt", "cc-token", "pg-cc-token", "jwt-token", "refresh", "bare-http", "introspect", "pg-introspect", "bare-proxy", "gateway"}

// scenarioBaseline names each postern scenario's baseline.
var scenarioBaseline = map[string]string{
	"cc-token":   "bare-bolt",
	"jwt-token":  "bare-bolt",
	"refresh":    "bare-bolt",
	"introspect": "bare-http",
	"gateway":    "bare-proxy",
	// Two replicas on PostgreSQL against one bbolt server (see postgres.go).
	"pg-cc-token":   "cc-token",
	"pg-introspect": "introspect",
}

// loadSecret is the POSTERN_SECRET of every server this command starts.
const loadSecret = "load-benchmark-secret-0123456789abcdef0123456789"

// Identities in the generated configuration.
const (
	serviceClient = "load-service" // client_credentials; also introspects
	mobileClient  = "load-mobile"  // trusted: password + refresh_token
	loadUser      = "load-user"
	loadPassword  = "load-user-password-0123456789" // a plain development password: fine for a benchmark
	gatewayPath   = "/api/items?q=load"
)

// target is a scenario's running system: the process whose RSS is reported,
// any helpers, and how to make workers.
type target struct {
	server    *proc   // measured: RSS, CPU profile
	others    []*proc // helpers (an authorization server behind the gateway); stopped after
	newWorker func(ctx context.Context, client *http.Client, id int) (*worker, error)
	note      string
	cleanup   func() // after the processes stop (drops a PostgreSQL schema)
	// probe, when set, runs beside the measured load (the revocation lag).
	probe func(ctx context.Context) (string, error)
}

// runner holds what a whole run shares: the binaries, the generated client
// secrets and the echo backend.
type runner struct {
	opts       *options
	dir        string
	postern    string // the built postern binary
	echoBin    string // the built examples/echo-backend binary
	self       string // this binary, re-executed for baselines
	echo       *proc  // started on first use, shared by bare-proxy and gateway
	gatewayErr error  // why the gateway scenario cannot run, if it cannot
	secrets    map[string]clientSecret
}

type clientSecret struct{ secret, hash string }

// run builds postern and runs the chosen scenarios one after another.
func run(ctx context.Context, opts *options) (*Report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "postern-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r := &runner{opts: opts, dir: dir, self: self,
		postern: filepath.Join(dir, "bin", "postern"), echoBin: filepath.Join(dir, "bin", "echo-backend")}
	defer r.close()
	if opts.profileDir != "" {
		if err := os.MkdirAll(opts.profileDir, 0o755); err != nil {
			return nil, err
		}
	}

	r.progress("building postern and examples/echo-backend")
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "bin")+string(filepath.Separator),
		"github.com/postern-auth/postern/cmd/postern", "github.com/postern-auth/postern/examples/echo-backend")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	r.secrets = map[string]clientSecret{}
	for _, id := range []string{serviceClient, mobileClient} {
		s, err := r.newClientSecret(ctx)
		if err != nil {
			return nil, err
		}
		r.secrets[id] = s
	}
	r.gatewayErr = r.gatewayAvailable(ctx)

	rep := newReport(opts)
	for _, name := range opts.scenarios {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res := r.runScenario(ctx, name)
		r.progress("%s", res.summary())
		rep.Results = append(rep.Results, res)
	}
	rep.finish()
	return rep, nil
}

func (r *runner) progress(format string, args ...any) {
	if r.opts.progress != nil {
		fmt.Fprintf(r.opts.progress, "load: "+format+"\n", args...)
	}
}

func (r *runner) close() {
	if r.echo != nil {
		_ = r.echo.stop()
	}
}

var secretLine = regexp.MustCompile(`(?m)^client_secret:\s+(\S+)\s*\nclient_secret_hash:\s+(\S+)\s*$`)

// newClientSecret runs `postern clients secret`: a 256-bit secret with its
// fast keyed-SHA-256 hash ($hmac-sha256$), as operators are told to use.
func (r *runner) newClientSecret(ctx context.Context) (clientSecret, error) {
	out, err := exec.CommandContext(ctx, r.postern, "clients", "secret").Output()
	if err != nil {
		return clientSecret{}, fmt.Errorf("postern clients secret: %w", err)
	}
	m := secretLine.FindSubmatch(out)
	if m == nil || !bytes.HasPrefix(m[2], []byte("$hmac-sha256$")) {
		return clientSecret{}, fmt.Errorf("postern clients secret: unexpected output %q", out)
	}
	return clientSecret{secret: string(m[1]), hash: string(m[2])}, nil
}

// gatewayAvailable says whether this tree's postern has the gateway
// command (it answers -help with its flags instead of "unknown command").
func (r *runner) gatewayAvailable(ctx context.Context) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, r.postern, "gateway", "-help")
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	if !strings.Contains(out.String(), "-config") {
		return fmt.Errorf("`postern gateway` is not available in this tree: %.200s", strings.TrimSpace(out.String()))
	}
	return nil
}

// runScenario starts the scenario's servers, runs the load and stops them.
func (r *runner) runScenario(ctx context.Context, name string) Result {
	res := Result{Scenario: name, Baseline: scenarioBaseline[name], Kind: "postern"}
	switch {
	case scenarioBaseline[name] == "":
		res.Kind = "baseline"
	case name == "gateway":
		res.Kind = "gateway"
	}
	if name == "gateway" && r.gatewayErr != nil {
		res.Skipped = r.gatewayErr.Error()
		return res
	}
	if strings.HasPrefix(name, "pg-") && r.opts.postgres == "" {
		res.Skipped = errNoPostgres.Error()
		return res
	}
	r.progress("%s: starting", name)
	res.LoadAvg1m = loadAvg1m()
	dataDir := filepath.Join(r.dir, "data-"+name)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		res.Failed = err.Error()
		return res
	}
	defer os.RemoveAll(dataDir)

	t, err := r.start(ctx, name, dataDir)
	if err != nil {
		res.Failed = err.Error()
		return res
	}
	stopAll := func() error {
		errs := []error{t.server.stop()}
		for _, p := range t.others {
			errs = append(errs, p.stop())
		}
		if t.cleanup != nil {
			t.cleanup()
		}
		return errors.Join(errs...)
	}
	res.Server = t.server.name
	res.Note = t.note
	res.RSS.IdleMiB = mib(t.server.idleRSS)

	tr := newTransport(r.opts.concurrency)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	workers := make([]*worker, r.opts.concurrency)
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i], errs[i] = t.newWorker(ctx, client, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		res.Failed = "set-up: " + err.Error()
		_ = stopAll()
		return res
	}

	r.progress("%s: %s warm-up, %s measured, %d workers", name, r.opts.warmup, r.opts.duration, r.opts.concurrency)
	sampler := sampleRSS(t.server.pid())
	var profile *profileCapture
	probed := make(chan string, 1)
	lr := runLoad(ctx, client, workers, r.opts.warmup, r.opts.duration, func() {
		if r.opts.profileDir != "" && t.server.pprofURL != "" {
			profile = r.captureProfile(t.server.pprofURL, filepath.Join(r.opts.profileDir, name+".pprof"))
		}
		if t.probe != nil {
			go func() {
				out, err := t.probe(ctx)
				if err != nil {
					out = "probe failed: " + err.Error()
				}
				probed <- out
			}()
		}
	})
	if t.probe != nil {
		select {
		case out := <-probed:
			res.Note = joinNote(res.Note, out)
		case <-time.After(time.Minute):
			res.Note = joinNote(res.Note, "revocation-lag probe did not finish")
		}
	}
	peak := sampler.stop()
	st, stErr := readProcStatus(t.server.pid())
	if profile != nil {
		if err := profile.wait(); err != nil {
			res.Note = joinNote(res.Note, "profile: "+err.Error())
		} else {
			res.Profile = profile.path
		}
	}
	if r.opts.profileDir != "" && t.server.pprofURL == "" && res.Kind != "baseline" {
		res.Note = joinNote(res.Note, "no CPU profile: "+t.server.name+" has no pprof listener")
	}
	if err := stopAll(); err != nil {
		res.Failed = "stop: " + err.Error()
	}

	res.fill(lr)
	if stErr == nil {
		res.RSS.PeakMiB = mib(max(peak, st.rssKiB))
		res.RSS.HWMMiB = mib(st.hwmKiB)
	} else {
		res.Note = joinNote(res.Note, stErr.Error())
	}
	return res
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// start launches what a scenario needs and returns it once healthy.
func (r *runner) start(ctx context.Context, name, dataDir string) (*target, error) {
	switch name {
	case "bare-http", "bare-bolt":
		p, err := startProc(ctx, name, r.self, []string{"-serve-baseline", name, "-baseline-data", dataDir}, nil)
		if err != nil {
			return nil, err
		}
		return &target{server: p, newWorker: formWorker(p.url+"/", "", "x=1", nil)}, nil
	case "bare-proxy":
		echo, err := r.echoBackend(ctx)
		if err != nil {
			return nil, err
		}
		p, err := startProc(ctx, name, r.self, []string{"-serve-baseline", name, "-baseline-upstream", echo.url}, nil)
		if err != nil {
			return nil, err
		}
		// The same request as through the gateway, with an Authorization
		// header of an opaque token's length (the proxy passes it on).
		fake := "Bearer ory_at_" + strings.Repeat("x", 43) + "." + strings.Repeat("y", 43)
		return &target{server: p, newWorker: getWorker(p.url+gatewayPath, fake)}, nil
	case "cc-token", "jwt-token":
		format := "opaque"
		if name == "jwt-token" {
			format = "jwt"
		}
		p, err := r.startPostern(ctx, name, dataDir, format)
		if err != nil {
			return nil, err
		}
		want := []byte(`"access_token"`)
		return &target{server: p, newWorker: formWorker(p.url+"/oauth2/token", r.serviceAuth(), "grant_type=client_credentials&scope=read",
			func(b []byte) error {
				if !bytes.Contains(b, want) {
					return fmt.Errorf("no access_token in %.200s", b)
				}
				return nil
			})}, nil
	case "introspect":
		p, err := r.startPostern(ctx, name, dataDir, "opaque")
		if err != nil {
			return nil, err
		}
		token, err := r.ccToken(ctx, p.url)
		if err != nil {
			p.kill()
			return nil, err
		}
		want := []byte(`"active":true`)
		body := url.Values{"token": {token}}.Encode()
		return &target{server: p, newWorker: formWorker(p.url+"/oauth2/introspect", r.serviceAuth(), body,
			func(b []byte) error {
				if !bytes.Contains(b, want) {
					return fmt.Errorf("token not active: %.200s", b)
				}
				return nil
			})}, nil
	case "refresh":
		p, err := r.startPostern(ctx, name, dataDir, "opaque")
		if err != nil {
			return nil, err
		}
		return &target{server: p, newWorker: r.refreshWorker(p.url)}, nil
	case "gateway":
		return r.startGateway(ctx, dataDir)
	case "pg-cc-token", "pg-introspect":
		return r.startPostgresScenario(ctx, name, dataDir)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// posternConfig is the configuration a scenario's server runs with.
func (r *runner) posternConfig(format string) ([]byte, error) {
	cfg := map[string]any{
		"tokens": map[string]any{"access_token_format": format},
		"clients": []map[string]any{
			{
				"client_id":          serviceClient,
				"client_secret_hash": r.secrets[serviceClient].hash,
				"grant_types":        []string{"client_credentials"},
				"scope":              "read write",
				// The gateway's client: it may follow the revocation feed.
				"resource_server": true,
			},
			{
				"client_id":          mobileClient,
				"client_secret_hash": r.secrets[mobileClient].hash,
				"trusted":            true,
				"grant_types":        []string{"password", "refresh_token"},
				"scope":              "read write",
			},
		},
		"users": r.loadUsers(),
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// startPostern runs `postern serve` on 127.0.0.1:0 and a fresh data
// directory, with pprof on its own loopback port when profiling.
func (r *runner) startPostern(ctx context.Context, name, dataDir, format string) (*proc, error) {
	cfg, err := r.posternConfig(format)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dataDir, "postern.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", cfgPath, "--addr", "127.0.0.1:0", "--data", filepath.Join(dataDir, "store")}
	if r.opts.profileDir != "" {
		args = append(args, "--pprof", "127.0.0.1:0")
	}
	return startProc(ctx, "postern serve ("+name+")", r.postern, args, []string{"POSTERN_SECRET=" + loadSecret})
}

// echoBackend starts examples/echo-backend once per run.
func (r *runner) echoBackend(ctx context.Context) (*proc, error) {
	if r.echo != nil {
		return r.echo, nil
	}
	p, err := startProc(ctx, "echo-backend", r.echoBin, []string{"--listen", "127.0.0.1:0"}, nil)
	if err != nil {
		return nil, err
	}
	r.echo = p
	return p, nil
}

// startGateway runs an authorization server, the echo backend and
// `postern gateway` in front of it with a token cache that outlives the run,
// so every measured request is answered from the cache.
func (r *runner) startGateway(ctx context.Context, dataDir string) (*target, error) {
	echo, err := r.echoBackend(ctx)
	if err != nil {
		return nil, err
	}
	as, err := r.startPostern(ctx, "gateway", dataDir, "opaque")
	if err != nil {
		return nil, err
	}
	token, err := r.ccToken(ctx, as.url)
	if err != nil {
		as.kill()
		return nil, err
	}
	cfg, err := json.MarshalIndent(map[string]any{
		"listen":        "127.0.0.1:0",
		"issuer":        as.url,
		"client_id":     serviceClient,
		"client_secret": "${POSTERN_LOAD_GATEWAY_SECRET}",
		"cache":         map[string]any{"ttl": "10m"},
		// A tier the load never exhausts: the rate limiter's work is part
		// of the gateway's cost, its 429s are not.
		"tiers":        map[string]any{"load": map[string]any{"requests": 1_000_000_000, "per": "1s"}},
		"client_tiers": map[string]string{serviceClient: "load"},
		"routes": []map[string]any{
			{"path_prefix": "/api", "upstream": echo.url, "scopes": []string{"read"}, "tier": "load"},
		},
	}, "", "  ")
	if err != nil {
		as.kill()
		return nil, err
	}
	cfgPath := filepath.Join(dataDir, "gateway.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		as.kill()
		return nil, err
	}
	gw, err := startProc(ctx, "postern gateway", r.postern, []string{"gateway", "--config", cfgPath},
		[]string{"POSTERN_LOAD_GATEWAY_SECRET=" + r.secrets[serviceClient].secret})
	if err != nil {
		as.kill()
		return nil, err
	}
	return &target{server: gw, others: []*proc{as}, newWorker: getWorker(gw.url+gatewayPath, "Bearer "+token),
		note:  "RSS is the gateway process's; its authorization server only answers the first introspection (cache ttl 10m)",
		probe: r.revocationLag(as.url, gw.url)}, nil
}

// revocationLag revokes tokens one by one while the load runs and times
// each from the revocation's answer to the gateway's first refusal.
func (r *runner) revocationLag(server, gateway string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		const n = 30
		c := &http.Client{Timeout: 5 * time.Second}
		get := func(token string) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+gatewayPath, nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		var lags []time.Duration
		for range n {
			token, err := r.ccToken(ctx, server)
			if err != nil {
				return "", err
			}
			if status, err := get(token); err != nil || status != http.StatusOK {
				return "", fmt.Errorf("fresh token through the gateway: %d %v", status, err)
			}
			if err := postForm(ctx, c, server+"/oauth2/revoke", serviceClient, r.secrets[serviceClient].secret, "token="+url.QueryEscape(token), nil); err != nil {
				return "", fmt.Errorf("revoke: %w", err)
			}
			revoked := time.Now()
			for {
				status, err := get(token)
				if err != nil {
					return "", err
				}
				if status == http.StatusUnauthorized {
					lags = append(lags, time.Since(revoked))
					break
				}
				if time.Since(revoked) > 5*time.Second {
					return "", errors.New("a revoked token still passed the gateway after 5s")
				}
				time.Sleep(time.Millisecond)
			}
		}
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		return fmt.Sprintf("revocation lag over %d revocations (revoke answered to gateway refusing): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
			n, ms(lags[n/2]), ms(lags[n*99/100]), ms(lags[n-1])), nil
	}
}

// serviceAuth is the Authorization header of the client-credentials client.
func (r *runner) serviceAuth() string {
	return basicAuth(serviceClient, r.secrets[serviceClient].secret)
}

// ccToken gets one client-credentials access token.
func (r *runner) ccToken(ctx context.Context, base string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err := postForm(ctx, http.DefaultClient, base+"/oauth2/token", serviceClient, r.secrets[serviceClient].secret,
		"grant_type=client_credentials&scope=read", &tok)
	if err == nil && tok.AccessToken == "" {
		err = errors.New("client credentials: no access_token")
	}
	return tok.AccessToken, err
}

// formWorker POSTs the same form every time, with an Authorization header
// when auth is set.
func formWorker(target, auth, body string, check func([]byte) error) func(context.Context, *http.Client, int) (*worker, error) {
	return func(_ context.Context, _ *http.Client, _ int) (*worker, error) {
		return &worker{
			next: func(ctx context.Context) (*http.Request, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
				if err != nil {
					return nil, err
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				return req, nil
			},
			check: check,
		}, nil
	}
}

// getWorker sends GET target with an Authorization header.
func getWorker(target, authorization string) func(context.Context, *http.Client, int) (*worker, error) {
	return func(_ context.Context, _ *http.Client, _ int) (*worker, error) {
		return &worker{next: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", authorization)
			return req, nil
		}}, nil
	}
}

// refreshWorker gives each worker its own refresh chain, started with the
// password grant; every request rotates it once. After a failure the chain
// may be revoked (reuse detection), so the worker starts a new one, untimed.
func (r *runner) refreshWorker(base string) func(context.Context, *http.Client, int) (*worker, error) {
	auth := basicAuth(mobileClient, r.secrets[mobileClient].secret)
	secret := r.secrets[mobileClient].secret
	return func(ctx context.Context, client *http.Client, id int) (*worker, error) {
		login := func(ctx context.Context) (string, error) {
			var tok tokenResponse
			body := url.Values{"grant_type": {"password"}, "username": {loadUserName(id)}, "password": {loadPassword}, "scope": {"read"}}.Encode()
			if err := postForm(ctx, client, base+"/oauth2/token", mobileClient, secret, body, &tok); err != nil {
				return "", fmt.Errorf("password grant: %w", err)
			}
			if tok.RefreshToken == "" {
				return "", errors.New("password grant: no refresh_token")
			}
			return tok.RefreshToken, nil
		}
		current, err := login(ctx)
		if err != nil {
			return nil, err
		}
		broken := false
		return &worker{
			next: func(ctx context.Context) (*http.Request, error) {
				if broken {
					rt, err := login(ctx)
					if err != nil {
						return nil, err
					}
					current, broken = rt, false
				}
				body := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(current)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/token", strings.NewReader(body))
				if err != nil {
					return nil, err
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				return req, nil
			},
			check: func(b []byte) error {
				var tok tokenResponse
				if err := json.Unmarshal(b, &tok); err != nil {
					return fmt.Errorf("refresh answer: %w", err)
				}
				if tok.RefreshToken == "" || tok.AccessToken == "" {
					return fmt.Errorf("refresh answer without tokens: %.200s", b)
				}
				current = tok.RefreshToken
				return nil
			},
			failed: func() { broken = true },
		}, nil
	}
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func basicAuth(id, secret string) string {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req.Header.Get("Authorization")
}

// postForm POSTs a form with HTTP Basic client authentication and decodes
// the JSON answer into out.
func postForm(ctx context.Context, client *http.Client, target, clientID, secret, body string, out any) error {
	// Set-up calls come from every worker at once and from one address;
	// the server lets a few sign-ins per address be checked at a time and
	// answers the others 429 with Retry-After, which a client honours.
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", basicAuth(clientID, secret))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			wait := time.Second
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
				wait = time.Duration(n) * time.Second
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: status %d: %.300s", target, resp.StatusCode, b)
		}
		if out == nil {
			return nil // an answer without a body to read (revocation)
		}
		return json.Unmarshal(b, out)
	}
}

// wantBody checks that a response body contains want.
func wantBody(want string) func([]byte) error {
	w := []byte(want)
	return func(b []byte) error {
		if !bytes.Contains(b, w) {
			return fmt.Errorf("response lacks %s: %.200s", want, b)
		}
		return nil
	}
}

// loadUsers gives every worker a user of its own, as real traffic has many
// users: Postern lets one sign-in per username be checked at a time.
func (r *runner) loadUsers() []map[string]any {
	users := make([]map[string]any, r.opts.concurrency)
	for i := range users {
		users[i] = map[string]any{"username": loadUserName(i), "password": loadPassword}
	}
	return users
}

func loadUserName(i int) string { return fmt.Sprintf("%s-%d", loadUser, i) }

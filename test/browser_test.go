package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// chromiumPath finds the browser: $POSTERN_CHROMIUM, Debian's
// /usr/bin/chromium, or chromium in PATH. Without one the test skips on a
// developer's machine and fails in CI, which must install it (.ci/run does).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POSTERN_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("POSTERN_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	const msg = "Chromium not found ($POSTERN_CHROMIUM, /usr/bin/chromium, chromium in PATH); install Debian's chromium: apt-get install -y chromium"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is where screenshots go: $POSTERN_ARTIFACTS, else the
// repository's artifacts/ (gitignored). go test runs in test/.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("POSTERN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	return abs
}

// browserConfig is userGrantsConfig cut down to what the browser test
// needs: the public SPA registered for redirectURI, the rs client to
// introspect with, alice, and an API catalogue that describes "read" (not
// "write") for the consent page.
func browserConfig(t *testing.T, redirectURI string) (cfg, introspectSecret string) {
	secret, hash := newClientSecret(t)
	aliceHash := hashPassword(t, "alice-password")
	return fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "spa", "client_name": "Example SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read write"}
  ],
  "users": [
    {"username": "alice", "password_hash": %q, "claims": {"email": "alice@example.com", "name": "Alice"}}
  ],
  "apis": [
    {"id": "photos", "name": "Photos", "base_url": "https://photos.example.com/v1", "scopes": {"read": "See your photos & albums"}}
  ]
}`, hash, redirectURI, aliceHash), secret
}

// startCallback serves the client's redirect URI on a free loopback port
// and hands the query of the first request to /callback to the channel.
func startCallback(t *testing.T) (redirectURI string, got <-chan url.Values) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case ch <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>Example SPA</title><p id=\"done\">Back at the app.</p>")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/callback", ch
}

// consoleLog keeps what the page logged: console messages, browser log
// entries (CSP violations, failed loads) and uncaught exceptions.
type consoleLog struct {
	mu      sync.Mutex
	entries []string
	bad     []string // CSP violations and exceptions
}

func (c *consoleLog) listen(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		e := ev.Entry
		line := fmt.Sprintf("[%s/%s] %s %s", e.Source, e.Level, e.Text, e.URL)
		c.entries = append(c.entries, line)
		if strings.Contains(e.Text, "Content Security Policy") || e.Source == log.EntrySourceViolation || e.Source == log.EntrySourceSecurity {
			c.bad = append(c.bad, line)
		}
	case *runtime.EventConsoleAPICalled:
		c.entries = append(c.entries, fmt.Sprintf("[console.%s] %d args", ev.Type, len(ev.Args)))
		c.bad = append(c.bad, fmt.Sprintf("console.%s called: the pages should run no script", ev.Type))
	case *runtime.EventExceptionThrown:
		line := fmt.Sprintf("[exception] %s", ev.ExceptionDetails.Text)
		c.entries = append(c.entries, line)
		c.bad = append(c.bad, line)
	}
}

func (c *consoleLog) snapshot() (entries, bad []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.entries...), append([]string(nil), c.bad...)
}

// documentHTML returns the serialized DOM of the page through the DOM
// domain, which works with script execution off. (DOM.getDocument would
// reset the node tree that chromedp keeps, so it asks for the html node.)
func documentHTML(ctx context.Context) (string, error) {
	return chromedp.Run(ctx, chromedp.QueryAfter(chromedp.CSS("html"), func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) (string, error) {
		res, err := cdp.Call(ctx, t, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: nodes[0].NodeID})
		return res.OuterHTML, err
	}))
}

// TestBrowserAuthorizationCode drives Debian's Chromium through the
// authorization code flow with PKCE: the login page, the consent page and the
// redirect to the client, with script execution off, since the pages must
// work without it (their CSP allows none). It saves full-page screenshots of
// both pages at 1280 and 360 pixels wide.
func TestBrowserAuthorizationCode(t *testing.T) {
	chromium := chromiumPath(t)

	redirectURI, callbackQuery := startCallback(t)
	cfg, rsSecret := browserConfig(t, redirectURI)
	f := &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: rsSecret}
	conf := &oauth2.Config{
		ClientID: "spa", Scopes: []string{"read", "write"}, RedirectURL: redirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: f.srv.URL + "/oauth2/authorize", TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:16]

	c := newChromium(t, chromium, 60*time.Second)
	ctx, bctx, start := c.ctx, c.tab, c.started
	screenshots, checkPage := c.screenshots, c.checkPage

	// The login page.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	); err != nil {
		t.Fatalf("open the login page: %v", err)
	}
	checkPage("login", "Sign in", "Example SPA", `for="username"`, `for="password"`)
	screenshots("login")
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}

	// The consent page.
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("button[value=allow]"))); err != nil {
		html, _ := documentHTML(bctx)
		t.Fatalf("no consent page after signing in: %v\n%s", err, html)
	}
	// A scope the catalogue describes shows its description, with its name
	// in small type; one it does not shows its name.
	checkPage("consent", "Allow access?", "Example SPA", "alice",
		`<li>See your photos &amp; albums <small class="scope-name"><code>read</code></small></li>`, "<li><code>write</code></li>",
		`value="deny"`, `id="remember"`)
	screenshots("consent")
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS("button[value=allow]"))); err != nil {
		t.Fatalf("allow: %v", err)
	}

	// The redirect reaches the client.
	var q url.Values
	select {
	case q = <-callbackQuery:
	case <-ctx.Done():
		html, _ := documentHTML(bctx)
		t.Fatalf("the browser never reached %s: %v\n%s", redirectURI, ctx.Err(), html)
	}
	t.Logf("browser flow took %v", time.Since(start).Round(time.Millisecond))
	if q.Get("state") != state || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("callback query = %v", q)
	}

	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token for a client registered for refresh_token")
	}
	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["sub"] != "alice" || info["client_id"] != "spa" || info["scope"] != "read write" {
		t.Errorf("introspection = %v", info)
	}

	c.reportConsole()
}

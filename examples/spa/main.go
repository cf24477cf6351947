// Command spa serves the single-page app example: a static page whose
// script signs the user in to Postern with oidc-client-ts (authorization
// code + PKCE, as a public client), calls an API through `postern gateway`
// with the access token, refreshes it with the refresh token, and signs
// out. It serves files only; every OAuth request is made by the browser.
//
// Run it from this directory after `npm ci` (see README.md).
package main

import (
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

//go:embed index.html app.js app.css
var static embed.FS

// libPath is oidc-client-ts's browser bundle (it defines the global
// `oidc`), as `npm ci` installs it.
const libPath = "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js"

// config is what the page reads from /config.json.
type config struct {
	Authority             string `json:"authority"`
	ClientID              string `json:"client_id"`
	RedirectURI           string `json:"redirect_uri"`
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri"`
	Scope                 string `json:"scope"`
	APIURL                string `json:"api_url"`
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:3000", "address to serve the page on")
	dir := flag.String("dir", ".", "the examples/spa directory, where `npm ci` put node_modules")
	var c config
	flag.StringVar(&c.Authority, "issuer", "http://127.0.0.1:4444", "Postern's issuer URL")
	flag.StringVar(&c.ClientID, "client-id", "spa", "the SPA's client_id (a public client)")
	flag.StringVar(&c.RedirectURI, "redirect-uri", "http://127.0.0.1:3000/callback", "registered redirect_uri")
	flag.StringVar(&c.PostLogoutRedirectURI, "post-logout-redirect-uri", "http://127.0.0.1:3000/signed-out", "registered post_logout_redirect_uri")
	flag.StringVar(&c.Scope, "scope", "openid profile read", "scopes to ask for")
	flag.StringVar(&c.APIURL, "api-url", "http://127.0.0.1:8080/search/v1/query", "API the page calls through the gateway")
	flag.Parse()

	lib, err := os.ReadFile(filepath.Join(*dir, libPath))
	if err != nil {
		return fmt.Errorf("read oidc-client-ts (run `npm ci` in examples/spa): %w", err)
	}
	cfgJSON, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	csp, err := policy(c)
	if err != nil {
		return err
	}
	page, err := static.ReadFile("index.html")
	if err != nil {
		return fmt.Errorf("read page: %w", err)
	}

	mux := http.NewServeMux()
	serveBytes := func(b []byte, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Security-Policy", csp)
			_, _ = w.Write(b)
		}
	}
	// The page itself answers at /, the redirect URI and the
	// post-logout URI: the script tells them apart by path.
	for _, u := range []string{"http://x/", c.RedirectURI, c.PostLogoutRedirectURI} {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("parse %q: %w", u, err)
		}
		path := p.Path
		if path == "" {
			path = "/"
		}
		if path == "/" {
			path = "/{$}"
		}
		mux.Handle("GET "+path, serveBytes(page, "text/html; charset=utf-8"))
	}
	for name, ctype := range map[string]string{"app.js": "text/javascript", "app.css": "text/css"} {
		b, err := static.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		mux.Handle("GET /"+name, serveBytes(b, ctype))
	}
	mux.Handle("GET /oidc-client-ts.min.js", serveBytes(lib, "text/javascript"))
	mux.Handle("GET /config.json", serveBytes(cfgJSON, "application/json"))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// On stdout, for scripts and tests waiting for the page.
	fmt.Printf("spa listening on http://%s (issuer %s, client %s)\n", ln.Addr(), c.Authority, c.ClientID)
	if err := http.Serve(ln, mux); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// policy is the page's Content-Security-Policy: scripts and styles from
// this origin only, fetch to itself, the issuer and the API.
func policy(c config) (string, error) {
	var connect []string
	for _, raw := range []string{c.Authority, c.APIURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("not an absolute URL: %q", raw)
		}
		connect = append(connect, u.Scheme+"://"+u.Host)
	}
	return "default-src 'self'; connect-src 'self' " + strings.Join(connect, " ") + "; frame-ancestors 'none'; base-uri 'none'", nil
}

package authz

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds one parsed template set per page, each joined with the layout.
type pages map[string]*template.Template

func parsePages() (pages, error) {
	out := pages{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", base, err)
		}
		out[base] = t
	}
	return out, nil
}

// pageData is what every page template sees; pages use the fields they need.
type pageData struct {
	Title      string
	Wide       bool
	Error      string
	Notice     string
	CSRF       string
	Auth       string // the pending authorization request, as a query string
	ClientName string
	Username   string
	Scopes     []scopeView
	Account    *accountView
	Providers  []samlLink // single sign-on buttons of the login page
	Portal     *portalView
	// Then is where a plain sign-in goes afterwards ("portal", or the
	// account page); one of fixed values, never a URL.
	Then string
}

// securityHeaders apply to every HTML page: no script at all, no framing
// (clickjacking of the consent button), no referrer leaking codes or state.
// formTargets are extra origins a form submission may end up redirected
// to (the client's redirect URI), which CSP form-action also governs.
func securityHeaders(h http.Header, formTargets ...string) {
	formAction := "'self'"
	for _, t := range formTargets {
		formAction += " " + t
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

func (s *Server) render(w http.ResponseWriter, status int, page string, data pageData, formTargets ...string) {
	t, ok := s.pages[page]
	if !ok {
		s.log.Error("unknown page", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("render page", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), formTargets...)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError is the page for a request that must not be redirected back
// (unknown client, unregistered redirect URI).
func (s *Server) renderError(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error", pageData{Title: title, Error: msg})
}

func (s *Server) staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// originOf returns scheme://host of an absolute URL, for CSP sources.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}

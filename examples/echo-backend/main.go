// Command echo-backend is the smallest backend that sits behind
// `postern gateway`: it never sees a token, only the identity headers the
// gateway sets, and answers every request with what it received as JSON.
//
//	go run ./examples/echo-backend --listen 127.0.0.1:9000
//
// A real backend would read the same headers: X-Authenticated-Userid (absent
// for machine clients), X-Authenticated-Client-Id, X-Authenticated-Scope, and
// Forwarded to build links the client can follow. It must only be reachable
// through the gateway, or anyone could send those headers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// echo is the response body.
type echo struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	RawQuery string `json:"raw_query,omitempty"`
	Host     string `json:"host"`
	// Identity is what the gateway vouches for.
	UserID    string `json:"user_id,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Forwarded string `json:"forwarded,omitempty"`
	// PublicURL is the link to this very resource as the client sees it,
	// rebuilt from Forwarded: what a backend does to write Location headers.
	PublicURL string `json:"public_url,omitempty"`
	// Headers are all request headers, lower-cased names, joined values.
	Headers map[string]string `json:"headers"`
}

func handler(w http.ResponseWriter, r *http.Request) {
	e := echo{
		Method:    r.Method,
		Path:      r.URL.Path,
		RawQuery:  r.URL.RawQuery,
		Host:      r.Host,
		UserID:    r.Header.Get("X-Authenticated-Userid"),
		ClientID:  r.Header.Get("X-Authenticated-Client-Id"),
		Scope:     r.Header.Get("X-Authenticated-Scope"),
		Forwarded: r.Header.Get("Forwarded"),
		Headers:   map[string]string{},
	}
	e.PublicURL = publicURL(e.Forwarded, r.URL.RequestURI())
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.Headers[strings.ToLower(k)] = strings.Join(r.Header[k], ", ")
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(e)
}

// publicURL reads the gateway's Forwarded header
// (proto=https;host=api.example.com;port=8443;prefix=/search/v1).
func publicURL(forwarded, requestURI string) string {
	if forwarded == "" {
		return ""
	}
	params := map[string]string{}
	for _, pair := range strings.Split(forwarded, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok {
			params[strings.ToLower(k)] = strings.Trim(v, `"`)
		}
	}
	host := params["host"]
	if p := params["port"]; p != "" {
		host += ":" + p
	}
	return params["proto"] + "://" + host + params["prefix"] + requestURI
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "listen address `host:port`")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("echo-backend listening on http://%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

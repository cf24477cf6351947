package test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTrustedProxyClientAddress: behind a trusted load balancer the audit
// log records the client's address from X-Forwarded-For, and without the
// trust a forged header changes nothing.
func TestTrustedProxyClientAddress(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		proxies := `[]`
		if trusted {
			proxies = `["127.0.0.1"]`
		}
		cfg := `{"trusted_proxies": ` + proxies + `, "users": [{"username": "alice", "password": "alice-password"}]}`
		srv := startServer(t, writeConfig(t, cfg), "")
		b := newBrowser(t)
		login := b.get(srv.URL + "/login")
		f := formFields(t, login)
		f.Set("username", "alice")
		f.Set("password", "wrong")
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/login", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		b.do(req)
		f.Set("password", "alice-password")
		if p := b.post(srv.URL+"/login", url.Values(f)); p.status != http.StatusOK {
			t.Fatalf("login: %d", p.status)
		}
		account := b.get(srv.URL + "/account")
		shows := strings.Contains(account.body, "198.51.100.7")
		if shows != trusted {
			t.Errorf("trusted=%v: account page shows the forwarded address: %v\n%s", trusted, shows, account.body)
		}
		if !strings.Contains(account.body, "Failed sign-in attempt") {
			t.Error("the failed sign-in is not listed")
		}
	}
}

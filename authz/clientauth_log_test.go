package authz

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/postern-auth/postern/identity"
)

// TestClientAuthLogBounded: a refused client's line names what it sent,
// cut short: a client_id or a client_assertion_type (quoted in fosite's
// hint) the size of the body must not become a line that size.
func TestClientAuthLogBounded(t *testing.T) {
	huge := strings.Repeat("x", 200<<10)
	forms := map[string]url.Values{
		"client_id": {"grant_type": {"client_credentials"}, "client_id": {huge}, "client_secret": {envSecret}},
		"client_assertion_type": {"grant_type": {"client_credentials"}, "client_id": {"billing"},
			"client_assertion_type": {huge}, "client_assertion": {"a.b.c"}},
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			e := newOutcomeEnv(t, identity.ThrottleOptions{}, func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			rec := e.post(form, "")
			if rec.Code == http.StatusOK {
				t.Fatalf("answer %d %s, want a refusal", rec.Code, rec.Body)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "client authentication failed") {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no client authentication line in the log:\n%.2000s", logs.String())
			}
			if len(line) > 2048 {
				t.Errorf("client authentication line is %d bytes: %.300s...", len(line), line)
			}
		})
	}
}

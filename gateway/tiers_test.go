package gateway

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const unknownTierLog = "names a tier this gateway does not define"

// TestTierChoice: client_tiers wins, then the token's tier when the
// gateway defines it, then the route's; the backend is told the tier
// applied. Each token is sent twice: the second request hits the cache,
// which must keep the tier, and must not log an unknown tier again.
func TestTierChoice(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Tiers = map[string]Tier{
			"bronze": {Requests: 2, Per: time.Hour, Burst: 10},
			"silver": {Requests: 50, Per: time.Hour},
			"gold":   {Requests: 100, Per: time.Hour},
		}
		c.ClientTiers = map[string]string{"vip": "silver"}
		c.Routes[0].Tier = "bronze" // /search/v1; /billing has none
	})
	exp := time.Now().Add(time.Hour)
	opaque := func(token, clientID, tier string) string {
		resp := map[string]any{"active": true, "client_id": clientID, "scope": "read write",
			"exp": exp.Unix(), "iss": h.f.srv.URL, "token_type": "Bearer"}
		if tier != "" {
			resp["tier"] = tier
		}
		h.f.setToken(token, resp)
		return token
	}
	jwt := func(clientID, tier string) string {
		c := h.f.jwtClaims(time.Now())
		c["client_id"], c["sub"] = clientID, clientID
		if tier != "" {
			c["tier"] = tier
		}
		return h.f.signJWT(c)
	}
	cases := []struct {
		name, path, token string
		wantLimit         string // RateLimit-Limit; "" for no limit
		wantTier          string // X-Authenticated-Tier at the backend
	}{
		{"client_tiers wins over the token", "/search/v1/x", opaque("vip", "vip", "gold"), "50", "silver"},
		{"known token tier", "/search/v1/x", opaque("app", "app", "gold"), "100", "gold"},
		{"known token tier in a JWT", "/search/v1/x", jwt("app-jwt", "gold"), "100", "gold"},
		{"known token tier on a route without one", "/billing/x", opaque("app2", "app2", "gold"), "100", "gold"},
		{"unknown token tier", "/search/v1/x", opaque("odd", "odd", "platinum"), "10", "bronze"},
		{"unknown token tier in a JWT", "/search/v1/x", jwt("odd-jwt", "platinum"), "10", "bronze"},
		{"no token tier", "/search/v1/x", opaque("plain", "plain", ""), "10", "bronze"},
		{"no tier anywhere", "/billing/x", opaque("plain2", "plain2", ""), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				resp, body := h.get(t, tc.path, tc.token, nil)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if got := resp.Header.Get("RateLimit-Limit"); got != tc.wantLimit {
					t.Errorf("RateLimit-Limit = %q, want %q", got, tc.wantLimit)
				}
				if got := decodeEcho(t, body).Headers.Values(HeaderTier); strings.Join(got, ",") != tc.wantTier {
					t.Errorf("backend's %s = %q, want %q", HeaderTier, got, tc.wantTier)
				}
			}
		})
	}
	// Two clients, four requests with the unknown tier: one warning.
	if n := strings.Count(logs.String(), unknownTierLog); n != 1 || !strings.Contains(logs.String(), "tier=platinum") {
		t.Errorf("%d warnings about the unknown tier, want 1 naming it:\n%s", n, logs.String())
	}
}

// TestUnknownTierWarningsBounded: a server naming ever new tiers gets
// each logged once up to the bound, then one last line, and the gateway
// remembers no more names than the bound.
func TestUnknownTierWarningsBounded(t *testing.T) {
	var logs syncBuffer
	c := newTierChooser(map[string]*tierState{}, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	rt := &route{}
	for i := range 3 * maxUnknownTierWarnings {
		for range 2 {
			c.choose(rt, &Identity{ClientID: "app", Tier: fmt.Sprintf("t%d", i)})
		}
	}
	out := logs.String()
	if n := strings.Count(out, unknownTierLog); n != maxUnknownTierWarnings {
		t.Errorf("%d unknown-tier warnings, want %d", n, maxUnknownTierWarnings)
	}
	if n := strings.Count(out, "no longer logging"); n != 1 {
		t.Errorf("%d 'no longer logging' lines, want 1", n)
	}
	if len(c.warned) > maxUnknownTierWarnings {
		t.Errorf("remembers %d names, want at most %d", len(c.warned), maxUnknownTierWarnings)
	}

	// A value that cannot be a tier name is logged once, without itself.
	logs = syncBuffer{}
	c = newTierChooser(map[string]*tierState{}, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, name := range []string{strings.Repeat("x", 1000), "a b", "evil\nline"} {
		c.choose(rt, &Identity{ClientID: "app", Tier: name})
	}
	if out := logs.String(); strings.Count(out, "not a valid tier name") != 1 || strings.Contains(out, "xxxx") || strings.Contains(out, "evil") {
		t.Errorf("invalid tier names logged as:\n%s", out)
	}
}

package gateway

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// TestStripProtectedHeaders parses a raw request, so header names arrive
// exactly as Go's server would canonicalize (or not) them.
func TestStripProtectedHeaders(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: x\r\n" +
		"x-authenticated-userid: lower\r\n" +
		"X-AUTHENTICATED-USERID: upper\r\n" +
		"X_Authenticated_Userid: underscore\r\n" +
		"x_authenticated-client_id: mixed\r\n" +
		"X-Authenticated-Scope: admin\r\n" +
		"x-authenticated-tier: gold\r\n" +
		"X_Authenticated_Tier: gold\r\n" +
		"forwarded: for=1.2.3.4;host=evil\r\n" +
		"X-Forwarded-For: 1.2.3.4\r\n" +
		"x-forwarded-host: evil\r\n" +
		"X-FORWARDED-PROTO: https\r\n" +
		"X-Forwarded-Prefix: /admin\r\n" +
		"X-Real-IP: 1.2.3.4\r\n" +
		"X-Forwarded-Client-Cert: Hash=forged;Subject=\"CN=admin\"\r\n" +
		"True-Client-IP: 1.2.3.4\r\n" +
		"CF-Connecting-IP: 1.2.3.4\r\n" +
		"x_client_ip: 1.2.3.4\r\n" +
		"x-authenticated-email: forged@example.com\r\n" +
		"X_Authenticated_Email: forged@example.com\r\n" +
		"X-Request-Id: keep\r\n" +
		"X_Custom_Thing: keep\r\n" +
		"Accept: keep\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	p := newProtectedHeaders(map[string]string{"email": "X-Authenticated-Email"})
	p.strip(r.Header)
	var kept []string
	for name := range r.Header {
		kept = append(kept, name)
	}
	for _, name := range kept {
		if r.Header.Get(name) != "keep" {
			t.Errorf("header %q survived with %q", name, r.Header.Get(name))
		}
	}
	if len(kept) != 3 {
		t.Errorf("kept %v, want X-Request-Id, X_custom_thing, Accept", kept)
	}
}

func TestSetIdentity(t *testing.T) {
	h := http.Header{}
	id := newIdentity("", "billing", "read write", timeZero)
	setIdentity(h, id, "", nil)
	if _, ok := h[HeaderUserID]; ok {
		t.Error("client-credentials identity set X-Authenticated-Userid")
	}
	if _, ok := h[HeaderTier]; ok {
		t.Error("identity limited in no tier set X-Authenticated-Tier")
	}
	if h.Get(HeaderClientID) != "billing" || h.Get(HeaderScope) != "read write" {
		t.Errorf("headers = %v", h)
	}
	h = http.Header{}
	id = newIdentity("alice", "spa", "read", timeZero)
	id.Claims = map[string]string{"email": "alice@example.com"}
	setIdentity(h, id, "gold", map[string]string{"email": "X-Authenticated-Email", "name": "X-Authenticated-Name"})
	if h.Get(HeaderUserID) != "alice" || h.Get(HeaderTier) != "gold" || h.Get("X-Authenticated-Email") != "alice@example.com" || h.Get("X-Authenticated-Name") != "" {
		t.Errorf("headers = %v", h)
	}
}

func TestCheckClaimHeader(t *testing.T) {
	ok := []string{"X-Authenticated-Email", "x-user-name"}
	bad := []string{"", "X Email", "X_Email", "Authorization", "host", "X-Authenticated-Userid", "x-authenticated-tier", "forwarded", "X-Forwarded-For", "Cookie", "X-Email:"}
	for _, h := range ok {
		if err := CheckClaimHeader(h); err != nil {
			t.Errorf("CheckClaimHeader(%q) = %v", h, err)
		}
	}
	for _, h := range bad {
		if err := CheckClaimHeader(h); err == nil {
			t.Errorf("CheckClaimHeader(%q) accepted", h)
		}
	}
}

func TestPickClaims(t *testing.T) {
	all := map[string]any{"email": "a@example.com", "n": 3.0, "ok": true, "groups": []any{"x"}, "evil": "a\r\nX-Admin: 1"}
	got := pickClaims(all, map[string]string{"email": "X-E", "n": "X-N", "ok": "X-Ok", "groups": "X-G", "evil": "X-Evil", "absent": "X-A"})
	want := map[string]string{"email": "a@example.com", "n": "3", "ok": "true"}
	if len(got) != len(want) {
		t.Fatalf("pickClaims = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("pickClaims[%s] = %q, want %q", k, got[k], v)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		hdr   []string
		query string
		token string
		err   error
	}{
		{nil, "", "", nil},
		{[]string{"Bearer abc.DEF-_~+/="}, "", "abc.DEF-_~+/=", nil},
		{[]string{"bearer abc"}, "q=1", "abc", nil},
		{[]string{"BEARER  abc"}, "", "abc", nil},
		{[]string{"Basic dXNlcjpwYXNz"}, "", "", nil},
		{[]string{"Bearer"}, "", "", errMalformedAuth},
		{[]string{"Bearer "}, "", "", errMalformedAuth},
		{[]string{"Bearer a b"}, "", "", errMalformedAuth},
		{[]string{"Bearer a=b"}, "", "", errMalformedAuth},
		{[]string{"Bearer a", "Bearer b"}, "", "", errMalformedAuth},
		// A query token alone is not accepted (nor an error); with a
		// header token it is a second method (RFC 6750 §2).
		{nil, "access_token=query", "", nil},
		{[]string{"Basic dXNlcjpwYXNz"}, "access_token=query", "", nil},
		{[]string{"Bearer abc"}, "access_token=query", "", errTwoMethods},
		{[]string{"Bearer abc"}, "access_token=abc", "", errTwoMethods},
		{[]string{"Bearer abc"}, "q=1;access%5Ftoken=", "", errTwoMethods},
		{[]string{"Bearer abc"}, "Access_Token", "", errTwoMethods},
		{[]string{"Bearer abc"}, "x_access_token=1", "abc", nil},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "http://x/?"+tt.query, nil)
		r.Header["Authorization"] = tt.hdr
		tok, err := bearerToken(r)
		if tok != tt.token || err != tt.err {
			t.Errorf("bearerToken(%q, ?%s) = %q, %v; want %q, %v", tt.hdr, tt.query, tok, err, tt.token, tt.err)
		}
	}
}

func TestWithoutQueryToken(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		found    bool
	}{
		{"", "", false},
		{"q=tax", "q=tax", false},
		{"q=a%26access_token%3Dx", "q=a%26access_token%3Dx", false},
		{"x_access_token=1&access_tokens=2", "x_access_token=1&access_tokens=2", false},
		{"access_token=abc", "", true},
		{"q=tax&access_token=abc", "q=tax", true},
		{"access_token=abc&q=tax", "q=tax", true},
		{"q=1&access_token=a&r=2&access_token=b;s=3", "q=1&r=2;s=3", true},
		{"q=1;access_token=a", "q=1", true},
		{"access%5Ftoken=a&q=1", "q=1", true},
		{"ACCESS_TOKEN=a&q=1", "q=1", true},
		{"access_token&q=1", "q=1", true},
		{"&&access_token=a&&q=1", "&&&q=1", true}, // empty members are kept
	} {
		got, found := withoutQueryToken(tt.in)
		if got != tt.want || found != tt.found {
			t.Errorf("withoutQueryToken(%q) = %q, %v; want %q, %v", tt.in, got, found, tt.want, tt.found)
		}
	}
}

package test

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Back-Channel Logout: signing out at Postern posts a signed logout token
// to each client of the user's grants that registered a
// backchannel_logout_uri. A client whose endpoint hangs holds up nobody:
// the sign-out completes, the others are told, and the failure is
// reported once the bounded attempts are spent.
func TestOpenIDBackchannelLogout(t *testing.T) {
	tokens := make(chan string, 4)
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			tokens <- r.PostForm.Get("logout_token")
		}
		w.WriteHeader(http.StatusOK)
	})}
	hangs := make(chan struct{})
	hanging := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hangs:
		case <-r.Context().Done():
		}
	})}
	recvURL, hangURL := serveOn(t, receiver), serveOn(t, hanging)
	t.Cleanup(func() { close(hangs) })

	cfg := oidcConfig(t, recvURL+"/logout")
	cfg = strings.Replace(cfg, `"post_logout_redirect_uris": ["http://127.0.0.1:3000/other-signed-out"]`,
		`"post_logout_redirect_uris": ["http://127.0.0.1:3000/other-signed-out"], "backchannel_logout_uri": "`+hangURL+`/logout"`, 1)
	srv := startServer(t, writeConfig(t, cfg), "")
	b := newBrowser(t)
	oidcSignIn(t, srv, b, "other", "openid", nil)
	idToken := oidcSignIn(t, srv, b, "rp", "openid", nil)["id_token"].(string)

	p := b.get(srv.URL + "/oauth2/logout?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {postLogoutURL}}.Encode())
	if p.status != http.StatusSeeOther || p.location != postLogoutURL {
		t.Fatalf("sign-out with a hanging back-channel client: %d %q", p.status, p.location)
	}

	var lt string
	select {
	case lt = <-tokens:
	case <-time.After(15 * time.Second):
		t.Fatal("the logout token did not arrive")
	}
	claims := verifyTypedJWT(t, srv, lt, "logout+jwt")
	idClaims := jwtClaims(t, idToken)
	if claims["iss"] != srv.URL || claims["aud"] != "rp" || claims["sub"] != "alice" || claims["sid"] != idClaims["sid"] || claims["nonce"] != nil {
		t.Errorf("logout token claims %v (ID token sid %v)", claims, idClaims["sid"])
	}
	if ev, _ := claims["events"].(map[string]any); ev == nil || ev["http://schemas.openid.net/event/backchannel-logout"] == nil {
		t.Errorf("logout token events: %v", claims["events"])
	}
	gwEventually(t, 30*time.Second, "the failed delivery to the hanging client to be reported", func() bool {
		return strings.Contains(srv.logs.String(), `msg="back-channel logout failed" client_id=other`)
	})
}

// serveOn runs h on a loopback port until the test ends.
func serveOn(t *testing.T, h *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.Serve(ln) }()
	t.Cleanup(func() { _ = h.Close() })
	return "http://" + ln.Addr().String()
}

// verifyTypedJWT checks a JWT against the server's JWKS and its typ header.
func verifyTypedJWT(t *testing.T, srv *server, token, typ string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(getBytes(t, srv.URL+"/.well-known/jwks.json"), &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse %q: %v", token, err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	if got := jws.Signatures[0].Header.ExtraHeaders["typ"]; got != typ {
		t.Errorf("typ = %v, want %s", got, typ)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// jwtClaims reads a JWT's claims without verifying it.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

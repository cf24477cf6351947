package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// browserAccountConfig registers two public SPAs, each with its own redirect
// URI (a callback listener of the test), the rs client to introspect with,
// and alice.
func browserAccountConfig(t *testing.T, photosURI, notesURI string) (cfg, introspectSecret string) {
	secret, hash := newClientSecret(t)
	return fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "photos", "client_name": "Photo SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read write"},
    {"client_id": "notes", "client_name": "Notes SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read"}
  ],
  "users": [
    {"username": "alice", "password": "alice-password"}
  ]
}`, hash, photosURI, notesURI), secret
}

// accountGrantRows maps the grant ID of each revoke form on the account page to the
// HTML of its table row up to that form.
func accountGrantRows(html string) map[string]string {
	rows := map[string]string{}
	for _, m := range grantIDField.FindAllStringSubmatchIndex(html, -1) {
		id := html[m[2]:m[3]]
		start := strings.LastIndex(html[:m[0]], "<tr")
		if start < 0 {
			start = 0
		}
		rows[id] = html[start:m[0]]
	}
	return rows
}

var (
	a11yButton = regexp.MustCompile(`(?s)<button\b([^>]*)>(.*?)</button>`)
	a11yField  = regexp.MustCompile(`<(input|select|textarea)\b([^>]*)>`)
	a11yAttr   = regexp.MustCompile(`([a-zA-Z][\w-]*)="([^"]*)"`)
	a11yTag    = regexp.MustCompile(`<[^>]*>`)
)

func a11yAttrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range a11yAttr.FindAllStringSubmatch(s, -1) {
		m[a[1]] = a[2]
	}
	return m
}

// unnamedControls lists the buttons and form fields of html that have no
// accessible name in the markup: no aria-label, aria-labelledby or
// <label for>, and for a button no text either. Hidden inputs need none.
func unnamedControls(html string) []string {
	var bad []string
	labelled := func(a map[string]string) bool {
		return strings.TrimSpace(a["aria-label"]) != "" || a["aria-labelledby"] != "" ||
			(a["id"] != "" && strings.Contains(html, `for="`+a["id"]+`"`))
	}
	for _, m := range a11yButton.FindAllStringSubmatch(html, -1) {
		if !labelled(a11yAttrs(m[1])) && strings.TrimSpace(a11yTag.ReplaceAllString(m[2], "")) == "" {
			bad = append(bad, m[0])
		}
	}
	for _, m := range a11yField.FindAllStringSubmatch(html, -1) {
		a := a11yAttrs(m[2])
		if a["type"] == "hidden" {
			continue
		}
		if !labelled(a) {
			bad = append(bad, m[0])
		}
	}
	return bad
}

// axNames returns, for every button, visible form field and table of the
// page, its start tag and the accessible name that Chromium computed for it,
// in document order.
func axNames(ctx context.Context) ([][2]string, error) {
	return chromedp.Run(ctx, chromedp.QueryAfter(chromedp.CSSAll(`button, input:not([type=hidden]), select, textarea, table`),
		func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) ([][2]string, error) {
			var names [][2]string
			for _, n := range nodes {
				n.RLock()
				id, backend := n.NodeID, n.BackendNodeID
				n.RUnlock()
				outer, err := cdp.Call(ctx, t, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: id})
				if err != nil {
					return nil, err
				}
				fetch := false
				ax, err := cdp.Call(ctx, t, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{BackendNodeID: backend, FetchRelatives: &fetch})
				if err != nil {
					return nil, err
				}
				name := ""
				for _, a := range ax.Nodes {
					if a.BackendDOMNodeID == backend && a.Name != nil && len(a.Name.Value) > 0 {
						if err := json.Unmarshal(a.Name.Value, &name); err != nil {
							return nil, fmt.Errorf("accessible name %s: %w", a.Name.Value, err)
						}
					}
				}
				tag, _, _ := strings.Cut(outer.OuterHTML, ">")
				names = append(names, [2]string{tag + ">", name})
			}
			return names, nil
		}))
}

// TestBrowserAccountPage is the real-browser test of the account page (issue
// 5): alice signs in through the code flow of two apps in Chromium, with
// script execution off, remembering her consent for one; the test redeems both
// codes; the browser opens /account, which lists both grants, and revokes the
// first one with its button. The revoked app can then no longer refresh and
// its access token introspects inactive, while the other app keeps working.
// The page is saved at 1280 and 360 pixels wide, must not scroll sideways at
// 360, and names every control.
func TestBrowserAccountPage(t *testing.T) {
	chromium := chromiumPath(t)

	photosURI, photosCallback := startCallback(t)
	notesURI, notesCallback := startCallback(t)
	cfg, rsSecret := browserAccountConfig(t, photosURI, notesURI)
	f := &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: rsSecret}
	endpoint := oauth2.Endpoint{AuthURL: f.srv.URL + "/oauth2/authorize", TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
	photos := &oauth2.Config{ClientID: "photos", Scopes: []string{"read", "write"}, RedirectURL: photosURI, Endpoint: endpoint}
	notes := &oauth2.Config{ClientID: "notes", Scopes: []string{"read"}, RedirectURL: notesURI, Endpoint: endpoint}

	c := newChromium(t, chromium, 90*time.Second)
	ctx, tab := c.ctx, c.tab

	// codeFlow runs the authorization code flow with PKCE for conf in the
	// tab, signing alice in when the tab has no session yet, and redeems the
	// code.
	codeFlow := func(conf *oauth2.Config, callback <-chan url.Values, remember bool) *oauth2.Token {
		t.Helper()
		start := time.Now()
		verifier := oauth2.GenerateVerifier()
		state := "state-" + oauth2.GenerateVerifier()[:16]
		if err := chromedp.Do(tab,
			chromedp.Navigate(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
			chromedp.WaitVisible(chromedp.CSS(`#username, button[value=allow]`)),
		); err != nil {
			html, _ := documentHTML(tab)
			t.Fatalf("%s: no login or consent page: %v\n%s", conf.ClientID, err, html)
		}
		html, err := documentHTML(tab)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html, `id="username"`) {
			if err := chromedp.Do(tab,
				chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
				chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
				chromedp.Click(chromedp.CSS(`button[type=submit]`)),
				chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
			); err != nil {
				html, _ := documentHTML(tab)
				t.Fatalf("%s: sign in: %v\n%s", conf.ClientID, err, html)
			}
		}
		if remember {
			if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#remember"))); err != nil {
				t.Fatalf("%s: tick remember: %v", conf.ClientID, err)
			}
		}
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("button[value=allow]"))); err != nil {
			t.Fatalf("%s: allow: %v", conf.ClientID, err)
		}
		var q url.Values
		select {
		case q = <-callback:
		case <-ctx.Done():
			html, _ := documentHTML(tab)
			t.Fatalf("%s: the browser never reached %s: %v\n%s", conf.ClientID, conf.RedirectURL, ctx.Err(), html)
		}
		if q.Get("state") != state || q.Get("code") == "" || q.Get("error") != "" {
			t.Fatalf("%s: callback query = %v", conf.ClientID, q)
		}
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("%s: exchange: %v", conf.ClientID, err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Fatalf("%s: want an access and a refresh token, got %+v", conf.ClientID, tok)
		}
		t.Logf("%s: code flow in the browser and exchange took %v", conf.ClientID, time.Since(start).Round(time.Millisecond))
		return tok
	}
	photosTok := codeFlow(photos, photosCallback, true)
	notesTok := codeFlow(notes, notesCallback, false)

	// The account page, with the session cookie of the sign-in.
	start := time.Now()
	if err := chromedp.Do(tab,
		chromedp.Navigate(f.srv.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/account/grants/revoke"] button`)),
	); err != nil {
		html, _ := documentHTML(tab)
		t.Fatalf("open /account: %v\n%s", err, html)
	}
	t.Logf("account page loaded in %v", time.Since(start).Round(time.Millisecond))
	html := c.checkPage("account", "Your account", "<strong>alice</strong>", "Apps with access", "Remembered permissions", "Recent security events", "Sign out")
	rows := accountGrantRows(html)
	photosID, notesID := "", ""
	for id, row := range rows {
		switch {
		case strings.Contains(row, "Photo SPA"):
			photosID = id
		case strings.Contains(row, "Notes SPA"):
			notesID = id
		}
	}
	if len(rows) != 2 || photosID == "" || notesID == "" {
		t.Fatalf("want two grant rows naming Photo SPA and Notes SPA, got %d:\n%s", len(rows), html)
	}
	// Only the consent given with "remember" ticked is listed.
	if n := strings.Count(html, `name="client" value=`); n != 1 || !strings.Contains(html, `name="client" value="photos"`) {
		t.Errorf("remembered permissions: %d forms, want one for photos:\n%s", n, html)
	}

	c.screenshots("account")

	// At 360 px, and at 1280, nothing may stick out sideways: the document is
	// no wider than the viewport (documentElement.scrollWidth, read from the
	// layout metrics since the page runs no script), and every button lies
	// inside it.
	for _, width := range []int64{360, 1280} {
		if err := chromedp.Do(tab, chromedp.EmulateViewport(width, 740)); err != nil {
			t.Fatal(err)
		}
		m, err := chromedp.Call(tab, cdppage.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			t.Fatalf("layout metrics at %d px: %v", width, err)
		}
		t.Logf("at %d px: layout viewport %d px wide, content %.0f×%.0f px", width, m.CSSLayoutViewport.ClientWidth, m.CSSContentSize.Width, m.CSSContentSize.Height)
		if m.CSSContentSize.Width > float64(width) {
			t.Errorf("at %d px the page is %.0f px wide: it scrolls sideways", width, m.CSSContentSize.Width)
		}
		outside, err := chromedp.Run(tab, chromedp.QueryAfter(chromedp.CSSAll("button"),
			func(ctx context.Context, tt *chromedp.Target, nodes []*chromedp.Node) ([]string, error) {
				var out []string
				for _, n := range nodes {
					n.RLock()
					id := n.NodeID
					n.RUnlock()
					box, err := cdp.Call(ctx, tt, dom.GetBoxModel, dom.GetBoxModelParams{NodeID: id})
					if err != nil {
						return nil, err
					}
					for i := 0; i < len(box.Model.Border); i += 2 {
						if x := box.Model.Border[i]; x < 0 || x > float64(width) {
							outer, _ := cdp.Call(ctx, tt, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: id})
							out = append(out, fmt.Sprintf("x=%.0f: %s", x, outer.OuterHTML))
							break
						}
					}
				}
				return out, nil
			}))
		if err != nil {
			t.Fatalf("button boxes at %d px: %v", width, err)
		}
		for _, o := range outside {
			t.Errorf("at %d px a button sticks out of the viewport: %s", width, o)
		}
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}

	// Every control, and every table, has an accessible name: in the markup,
	// and as Chromium computes it for assistive technology.
	for _, b := range unnamedControls(html) {
		t.Errorf("control without a label, aria-label or text: %s", b)
	}
	names, err := axNames(tab)
	if err != nil {
		t.Fatalf("accessibility tree: %v", err)
	}
	if len(names) != 9 { // 2 revoke, revoke all, forget, sign out, sign out everywhere; 3 tables
		t.Errorf("%d controls and tables on the page, want 9: %v", len(names), names)
	}
	for _, n := range names {
		if strings.TrimSpace(n[1]) == "" {
			t.Errorf("Chromium computes no accessible name for %s", n[0])
		}
	}

	// Revoke Photo SPA with the button of its row.
	revoke := chromedp.CSS(fmt.Sprintf(`form[action="/account/grants/revoke"]:has(input[name="grant"][value="%s"]) button[type=submit]`, photosID))
	a, err := chromedp.Run(tab, chromedp.Attributes(revoke))
	if err != nil {
		t.Fatalf("the revoke button of Photo SPA: %v", err)
	}
	if a["aria-label"] != "Revoke access of Photo SPA" {
		t.Errorf("the revoke button of the Photo SPA row is labelled %q", a["aria-label"])
	}
	start = time.Now()
	if err := chromedp.Do(tab,
		chromedp.Click(revoke),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role=status]`)),
	); err != nil {
		html, _ := documentHTML(tab)
		t.Fatalf("revoke: no notice: %v\n%s", err, html)
	}
	t.Logf("revoke round trip (POST, redirect, page) took %v", time.Since(start).Round(time.Millisecond))
	if loc, err := chromedp.Run(tab, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/account?done=revoked") {
		t.Errorf("after revoking, the browser is at %q (%v)", loc, err)
	}
	html = c.checkPage("account after revoking", "Access revoked", "You revoked the access of Photo SPA")
	rows = accountGrantRows(html)
	if _, ok := rows[notesID]; len(rows) != 1 || !ok || strings.Contains(strings.Join(slices.Collect(maps.Values(rows)), ""), "Photo SPA") {
		t.Errorf("after revoking Photo SPA: %d grant rows, Notes SPA's kept: %v:\n%s", len(rows), ok, html)
	}
	c.screenshots("account-revoked")

	// The revoked app is out: its access token introspects inactive at once
	// and its refresh token is refused.
	if info := f.introspect(t, photosTok.AccessToken); info["active"] != false {
		t.Errorf("Photo SPA's access token after revocation: %v", info)
	}
	photosTok.Expiry = time.Now().Add(-time.Minute)
	if _, err := photos.TokenSource(ctx, photosTok).Token(); !isOAuthError(err, "invalid_grant") {
		t.Errorf("refresh of the revoked grant: %v, want invalid_grant", err)
	}
	// The other app keeps working.
	if info := f.introspect(t, notesTok.AccessToken); info["active"] != true || info["client_id"] != "notes" || info["sub"] != "alice" {
		t.Errorf("Notes SPA's access token: %v", info)
	}
	notesTok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := notes.TokenSource(ctx, notesTok).Token()
	if err != nil {
		t.Fatalf("Notes SPA can no longer refresh: %v", err)
	}
	if fresh.AccessToken == notesTok.AccessToken {
		t.Error("refresh returned the old access token")
	}
	if info := f.introspect(t, fresh.AccessToken); info["active"] != true || info["client_id"] != "notes" {
		t.Errorf("Notes SPA's refreshed access token: %v", info)
	}
	t.Logf("whole browser test took %v", time.Since(c.started).Round(time.Millisecond))

	c.reportConsole()
}

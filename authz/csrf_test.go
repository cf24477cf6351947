package authz

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCSRFTokenBoundToSession replays a CSRF token minted in one login
// session in another session's forms. The other browser even holds the
// same CSRF cookie (planted by a sibling site, or read on a shared
// machine), so only the token's binding to the session can tell them
// apart. Every form refuses the stranger's token and takes the browser's
// own (the control: same cookie, same form).
func TestCSRFTokenBoundToSession(t *testing.T) {
	webAuth := codeParams("web", webCallback)
	forms := []struct {
		name string
		page string // where the form is shown
		path string // where it posts
		// fields completes the form; ok says the control post succeeded.
		fields func(b *browser, auth string) url.Values
		ok     func(r reply) bool
	}{
		{"login", pathLogin, pathLogin,
			func(b *browser, _ string) url.Values {
				return url.Values{"username": {"bob"}, "password": {"bob-password"}}
			},
			func(r reply) bool { return r.status == http.StatusSeeOther && r.location == pathAccount }},
		{"consent", pathAuthorize + "?" + webAuth.Encode(), pathConsent,
			func(b *browser, auth string) url.Values { return url.Values{"auth": {auth}, "decision": {"allow"}} },
			func(r reply) bool {
				return r.status == http.StatusSeeOther && strings.HasPrefix(r.location, webCallback+"?code=")
			}},
		{"revoke all apps", pathAccount, pathAccount + "/grants/revoke-all",
			func(*browser, string) url.Values { return url.Values{} },
			func(r reply) bool {
				return r.status == http.StatusSeeOther && r.location == pathAccount+"?done=revoked-all"
			}},
		{"revoke one app", pathAccount, pathAccount + "/grants/revoke",
			func(*browser, string) url.Values { return url.Values{"grant": {"no-such-grant"}} },
			func(r reply) bool { return r.status == http.StatusNotFound }},
		{"forget consent", pathAccount, pathAccount + "/consents/revoke",
			func(*browser, string) url.Values { return url.Values{"client": {"web"}} },
			func(r reply) bool { return r.status == http.StatusNotFound }},
		{"sign out everywhere", pathAccount, pathAccount + "/sessions/end-all",
			func(*browser, string) url.Values { return url.Values{} },
			func(r reply) bool { return r.status == http.StatusSeeOther && r.location == pathLogin }},
		{"sign out", pathAccount, pathLogout,
			func(*browser, string) url.Values { return url.Values{} },
			func(r reply) bool { return r.status == http.StatusSeeOther && r.location == pathLogin }},
	}
	// The other session is another user's, or the same user's other
	// sign-in (the token names the session, not only the user).
	for _, other := range []string{"bob", "alice"} {
		for _, form := range forms {
			t.Run(form.name+" in a session of "+other, func(t *testing.T) {
				f := newCtlFixture(t)
				csrfName := f.srv.jar.csrfName()
				mine, theirs := f.browser(t), f.browser(t)
				mine.signIn("alice")
				theirs.signIn(other)
				// One CSRF cookie for both browsers.
				theirs.plant(csrfName, mine.cookie(csrfName).Value)

				page := mine.get(form.page)
				if page.status != http.StatusOK {
					t.Fatalf("%s: %s", form.page, page)
				}
				stolen, auth := formFields(t, page.body)
				fields := form.fields(theirs, auth)
				fields.Set(csrfField, stolen)
				r := theirs.post(form.path, fields)
				if r.status != http.StatusForbidden || r.location != "" {
					t.Fatalf("another session's CSRF token: %s\nwant 403 and no redirect", r)
				}

				// Control: the same browser, cookie and form with its own token.
				page = theirs.get(form.page)
				if theirs.cookie(csrfName).Value != mine.cookie(csrfName).Value {
					t.Fatal("the browsers no longer share the CSRF cookie; the refusal proves nothing")
				}
				own, auth := formFields(t, page.body)
				if own == stolen {
					t.Fatal("both sessions got the same CSRF token")
				}
				fields = form.fields(theirs, auth)
				fields.Set(csrfField, own)
				if r := theirs.post(form.path, fields); !form.ok(r) {
					t.Errorf("own CSRF token refused: %s", r)
				}
			})
		}
	}
}

package test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/testsaml"
	"golang.org/x/oauth2"

	"github.com/postern-auth/postern/samlsp/samltest"
)

// The test IdP program (test/samlidp) is built once, beside the postern
// binary, the first time a test needs it.
var (
	idpBuild     sync.Once
	idpBinary    string
	idpBuildFail string
)

func samlIdPBinary(t *testing.T) string {
	t.Helper()
	idpBuild.Do(func() {
		idpBinary = filepath.Join(filepath.Dir(binary), "samlidp")
		out, err := exec.Command("go", "build", "-o", idpBinary, "github.com/postern-auth/postern/test/samlidp").CombinedOutput()
		if err != nil {
			idpBuildFail = fmt.Sprintf("build test/samlidp: %v\n%s", err, out)
		}
	})
	if idpBuildFail != "" {
		t.Fatal(idpBuildFail)
	}
	return idpBinary
}

const (
	idpUser     = "alice"
	idpPassword = "alice-idp-password"
	idpEmail    = "alice@corp.example"
	idpName     = "Alice Corp"
)

// idpProcess is a running test/samlidp.
type idpProcess struct {
	URL  string
	logs *syncBuffer
}

func startSAMLIdP(t *testing.T) *idpProcess {
	t.Helper()
	cmd := exec.Command(samlIdPBinary(t), "-addr", "127.0.0.1:0", "-user", idpUser, "-password", idpPassword, "-email", idpEmail, "-name", idpName)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &idpProcess{logs: &syncBuffer{}}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("IdP logs:\n%s", p.logs.String())
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "samlidp listening on "); ok {
				urls <- u
			}
		}
	}()
	select {
	case p.URL = <-urls:
	case <-done:
		t.Fatalf("samlidp exited:\n%s", p.logs.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("samlidp did not report its address:\n%s", p.logs.String())
	}
	return p
}

// register hands Postern's SP metadata to the IdP (PUT /services/{id}).
func (p *idpProcess) register(t *testing.T, id, spMetadataURL string) {
	t.Helper()
	md := getBytes(t, spMetadataURL)
	req, _ := http.NewRequest(http.MethodPut, p.URL+"/services/"+id, strings.NewReader(string(md)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("register SP at IdP: %d %s", resp.StatusCode, body)
	}
}

// samlConfig is the browser test's configuration plus the provider corp,
// whose metadata comes from metadataJSON ("metadata_url": ... or
// "metadata_file": ...). Local alice exists too: corp:alice is another
// account.
func samlConfig(t *testing.T, redirectURI, providers string) (cfg, introspectSecret string) {
	secret, hash := newClientSecret(t)
	return fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "spa", "client_name": "Example SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read write"}
  ],
  "users": [{"username": "alice", "password": "local-alice-password", "claims": {"email": "alice@local.example"}}],
  "saml_providers": [%s]
}`, hash, redirectURI, providers), secret
}

func corpProvider(metadata string) string {
	return `{"id": "corp", "display_name": "Corporate SSO", ` + metadata + `, "name_id_format": "persistent",
     "attributes": {"email": "urn:oid:0.9.2342.19200300.100.1.3", "name": "urn:oid:2.5.4.3"}}`
}

var (
	ssoLink      = regexp.MustCompile(`<a class="button secondary" href="([^"]+)">Sign in with Corporate SSO</a>`)
	idpReturn    = regexp.MustCompile(`<input type="hidden" name="return" value="([^"]*)">`)
	samlPostForm = regexp.MustCompile(`<form method="post" action="([^"]+)" id="SAMLResponseForm">`)
	samlField    = regexp.MustCompile(`<input type="hidden" name="(SAMLResponse|RelayState)" value="([^"]*)" />`)
	signedInAs   = regexp.MustCompile(`Signed in as <strong>([^<]*)</strong>`)
	consentUser  = regexp.MustCompile(`signed in as <strong>([^<]*)</strong>`)
)

// TestSAMLLoginEndToEnd: a user of the corporate IdP (test/samlidp, a
// separate process) signs in to an OAuth client through Postern: login
// page, SSO button, IdP login, ACS, consent, code, tokens whose
// introspection names corp:alice with the mapped attributes.
func TestSAMLLoginEndToEnd(t *testing.T) {
	idp := startSAMLIdP(t)
	cfg, rsSecret := samlConfig(t, callbackURL, corpProvider(`"metadata_url": "`+idp.URL+`/metadata"`))
	f := &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: rsSecret}
	idp.register(t, "corp", f.srv.URL+"/saml/corp/metadata")

	conf := f.oauthConfig("spa", "", "read")
	verifier := oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:16]
	b := newBrowser(t)

	p := b.get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	m := ssoLink.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("login page without the SSO button (%d):\n%s", p.status, p.body)
	}
	// To the IdP, which shows its login form.
	p = b.get(f.srv.URL + html.UnescapeString(m[1]))
	ret := idpReturn.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || ret == nil {
		t.Fatalf("no IdP login form (%d):\n%s", p.status, p.body)
	}
	p = b.post(idp.URL+"/authn", url.Values{"user": {idpUser}, "password": {idpPassword}, "return": {html.UnescapeString(ret[1])}})
	form := samlPostForm.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || form == nil {
		t.Fatalf("IdP did not answer with its POST form (%d):\n%s", p.status, p.body)
	}
	fields := url.Values{}
	for _, m := range samlField.FindAllStringSubmatch(p.body, -1) {
		fields.Set(m[1], html.UnescapeString(m[2]))
	}
	acs := html.UnescapeString(form[1])
	if acs != f.srv.URL+"/saml/corp/acs" {
		t.Errorf("IdP posts to %s", acs)
	}
	// Postern advertises an encryption key; the IdP encrypts to it.
	if raw, _ := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse")); !strings.Contains(string(raw), "EncryptedAssertion") || strings.Contains(string(raw), idpEmail) {
		t.Errorf("the IdP's response is not encrypted:\n%s", raw)
	}

	// The ACS signs alice in and resumes the authorization request: consent.
	p = b.post(acs, fields)
	if !isConsentPage(p) {
		t.Fatalf("after the ACS, want the consent page; got %d\n%s", p.status, p.body)
	}
	if m := consentUser.FindStringSubmatch(p.body); m == nil || m[1] != "corp:alice" {
		t.Errorf("consent page names %v, want corp:alice", m)
	}
	q := callback(t, b.consent(f.srv.URL, p, "allow", false))
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback = %v", q)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["sub"] != "corp:alice" || info["username"] != "corp:alice" || info["email"] != idpEmail || info["name"] != idpName || info["client_id"] != "spa" {
		t.Errorf("introspection = %v", info)
	}
	// Refresh tokens work as for a local user.
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(context.Background(), tok).Token()
	if err != nil || next.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}
	if info := f.introspect(t, next.AccessToken); info["sub"] != "corp:alice" || info["email"] != idpEmail {
		t.Errorf("introspection after refresh = %v", info)
	}
	// The account page is corp:alice's, with the grant.
	p = b.get(f.srv.URL + "/account")
	if m := signedInAs.FindStringSubmatch(p.body); m == nil || m[1] != "corp:alice" || !strings.Contains(p.body, "Example SPA") {
		t.Errorf("account page:\n%s", p.body)
	}
	if strings.Contains(f.srv.logs.String(), fields.Get("SAMLResponse")[:64]) {
		t.Error("the SAML response reached the server log")
	}
}

// samlFixture runs Postern with corp and partner (IdP-initiated allowed)
// trusting an IdP built by the test, whose key signs the responses the
// test makes. The issuer is fixed, so the entity ID and ACS URL stay the
// same across a restart.
type samlFixture struct {
	srv     *server
	cfgPath string
	idp     *samltest.IdP
	spCert  *samltest.Signer // only Cert: Postern's certificate from its metadata
}

const samlIssuer = "http://postern.test"

func newSAMLFixture(t *testing.T) *samlFixture {
	t.Helper()
	idp, err := samltest.NewIdP("https://idp.corp.test/metadata", "https://idp.corp.test/sso")
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := samlConfig(t, callbackURL, corpProvider(`"metadata_file": "corp-idp.xml"`)+`,
    {"id": "partner", "metadata_file": "corp-idp.xml", "allow_idp_initiated": true}`)
	path := writeConfig(t, cfg)
	// Relative to the configuration file, not to the test's directory.
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "corp-idp.xml"), md, 0o600); err != nil {
		t.Fatal(err)
	}
	f := &samlFixture{cfgPath: path, idp: idp}
	f.srv = startServer(t, path, "", "--issuer", samlIssuer)
	f.spCert = &samltest.Signer{Cert: spCertificate(t, f.srv.URL+"/saml/corp/metadata")}
	return f
}

func spCertificate(t *testing.T, metadataURL string) *x509.Certificate {
	t.Helper()
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(getBytes(t, metadataURL), &ed); err != nil {
		t.Fatal(err)
	}
	for _, kd := range ed.SPSSODescriptors[0].KeyDescriptors {
		if kd.Use == "encryption" {
			der, _ := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(kd.KeyInfo.X509Data.X509Certificates[0].Data), ""))
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatal("SP metadata has no encryption certificate")
	return nil
}

// start begins a sign-in with provider for a pending authorization
// request and returns the AuthnRequest ID the browser is bound to.
func (f *samlFixture) start(t *testing.T, b *browser, provider string) string {
	t.Helper()
	auth := url.Values{"client_id": {"spa"}, "redirect_uri": {callbackURL}, "response_type": {"code"}, "scope": {"read"},
		"state": {"state-0123456789"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	p := b.getNoFollow(f.srv.URL + "/saml/" + provider + "/login?auth=" + url.QueryEscape(auth.Encode()))
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, f.idp.SSOURL+"?") {
		t.Fatalf("SAML login: %d to %q\n%s", p.status, p.location, p.body)
	}
	c := cookiesOf(p)["postern_saml"]
	if c == nil || !c.HttpOnly || c.Path != "/saml/" || c.Secure || strings.Contains(p.header.Get("Set-Cookie"), "SameSite") {
		t.Errorf("binding cookie %+v (%s): want HttpOnly, Path=/saml/, and over http no Secure and no SameSite", c, p.header.Get("Set-Cookie"))
	}
	u, _ := url.Parse(p.location)
	raw, err := testsaml.ParseRedirectRequest(u)
	if err != nil {
		t.Fatal(err)
	}
	var req saml.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	if u.Query().Get("Signature") == "" || req.AssertionConsumerServiceURL != samlIssuer+"/saml/"+provider+"/acs" {
		t.Errorf("AuthnRequest unsigned or with ACS %q", req.AssertionConsumerServiceURL)
	}
	return req.ID
}

func (f *samlFixture) login(provider, requestID string) samltest.Login {
	return samltest.Login{
		SPEntityID:   samlIssuer + "/saml/" + provider + "/metadata",
		ACS:          samlIssuer + "/saml/" + provider + "/acs",
		InResponseTo: requestID,
		NameID:       "alice",
		Attributes:   map[string]string{"urn:oid:0.9.2342.19200300.100.1.3": "alice@corp.example"},
	}
}

// response builds a response for l: assertion signed by assertionSigner
// (nil: unsigned), optionally encrypted to Postern, in a response signed
// by responseSigner (nil: unsigned). mod may change the assertion first.
func (f *samlFixture) response(t *testing.T, l samltest.Login, assertionSigner, responseSigner *samltest.Signer, encrypt bool, mod func(*saml.Assertion)) string {
	t.Helper()
	a := f.idp.Assertion(l)
	if mod != nil {
		mod(a)
	}
	el := a.Element()
	var err error
	if assertionSigner != nil {
		if el, err = assertionSigner.SignAssertion(a); err != nil {
			t.Fatal(err)
		}
	}
	if encrypt {
		if el, err = samltest.Encrypt(el, f.spCert.Cert); err != nil {
			t.Fatal(err)
		}
	}
	return encodeResponse(t, f.idp.Response(l), responseSigner, el)
}

func encodeResponse(t *testing.T, r *saml.Response, s *samltest.Signer, children ...*etree.Element) string {
	t.Helper()
	el, err := samltest.ResponseElement(r, s, children...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := samltest.Encode(el)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *samlFixture) post(b *browser, provider, samlResponse string) page {
	return b.postNoFollow(f.srv.URL+"/saml/"+provider+"/acs", url.Values{"SAMLResponse": {samlResponse}})
}

// wantRefused checks a refused response: an error page with status, no
// session, and the browser still signed out.
func (f *samlFixture) wantRefused(t *testing.T, what string, b *browser, p page, status int, reason string) {
	t.Helper()
	wantErrorPage(t, what, p, status)
	if _, ok := cookiesOf(p)["postern_session"]; ok {
		t.Errorf("%s: a session cookie was set", what)
	}
	if acct := b.getNoFollow(f.srv.URL + "/account"); acct.status == http.StatusOK {
		t.Errorf("%s: the browser is signed in", what)
	}
	if reason != "" && !strings.Contains(p.body, reason) {
		t.Errorf("%s: page does not say %q:\n%s", what, reason, p.body)
	}
}

// wantSignedIn checks an accepted response: a redirect to target and a
// session as subject.
func (f *samlFixture) wantSignedIn(t *testing.T, what string, b *browser, p page, target, subject string) {
	t.Helper()
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, target) {
		t.Fatalf("%s: %d to %q, want a redirect to %s\n%s", what, p.status, p.location, target, p.body)
	}
	acct := b.getNoFollow(f.srv.URL + "/account")
	if m := signedInAs.FindStringSubmatch(acct.body); m == nil || m[1] != subject {
		t.Errorf("%s: account page shows %v, want %s", what, m, subject)
	}
}

// TestSAMLResponseChecks posts responses built by the test to the ACS:
// each defective one is refused with an error page and no session.
func TestSAMLResponseChecks(t *testing.T) {
	f := newSAMLFixture(t)
	stranger, err := samltest.NewSigner("stranger")
	if err != nil {
		t.Fatal(err)
	}
	idpKey := f.idp.Signer
	now := time.Now().UTC()

	t.Run("valid encrypted assertion signs in and resumes the request", func(t *testing.T) {
		b := newBrowser(t)
		id := f.start(t, b, "corp")
		p := f.post(b, "corp", f.response(t, f.login("corp", id), idpKey, nil, true, nil))
		f.wantSignedIn(t, "valid", b, p, "/oauth2/authorize?", "corp:alice")
		if c := b.get(f.srv.URL + p.location); !isConsentPage(c) {
			t.Errorf("resumed request: want the consent page, got %d\n%s", c.status, c.body)
		}
	})

	type tc struct {
		name   string
		build  func(t *testing.T, id string) string
		status int
		reason string
	}
	signed := func(mod func(*samltest.Login), amod func(*saml.Assertion)) func(*testing.T, string) string {
		return func(t *testing.T, id string) string {
			l := f.login("corp", id)
			if mod != nil {
				mod(&l)
			}
			return f.response(t, l, idpKey, idpKey, false, amod)
		}
	}
	cases := []tc{
		{"bad signature", func(t *testing.T, id string) string {
			l := f.login("corp", id)
			el, err := idpKey.SignAssertion(f.idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			el.FindElement(".//NameID").SetText("admin")
			return encodeResponse(t, f.idp.Response(l), nil, el)
		}, 403, "invalid signature"},
		{"signed by a stranger", func(t *testing.T, id string) string {
			return f.response(t, f.login("corp", id), stranger, stranger, false, nil)
		}, 403, "signed with a key"},
		{"unsigned", func(t *testing.T, id string) string {
			return f.response(t, f.login("corp", id), nil, nil, false, nil)
		}, 403, "not signed"},
		{"unsigned, encrypted", func(t *testing.T, id string) string {
			return f.response(t, f.login("corp", id), nil, nil, true, nil)
		}, 403, "not signed"},
		{"other audience", signed(func(l *samltest.Login) { l.SPEntityID = samlIssuer + "/saml/partner/metadata" }, nil), 403, "another service provider"},
		{"wrong destination", signed(func(l *samltest.Login) { l.ACS = samlIssuer + "/saml/partner/acs" }, nil), 403, "another endpoint"},
		{"wrong recipient", signed(nil, func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://evil.test/acs"
		}), 403, "another endpoint"},
		{"expired", signed(func(l *samltest.Login) { l.Now = now.Add(-10 * time.Minute) }, nil), 403, "expired"},
		{"not yet valid", signed(func(l *samltest.Login) { l.Now = now.Add(10 * time.Minute) }, nil), 403, "not yet valid"},
		{"unknown InResponseTo", func(t *testing.T, _ string) string { return signed(nil, nil)(t, samltest.NewID()) }, 403, "no sign-in this browser started"},
		{"unsolicited", func(t *testing.T, _ string) string { return signed(nil, nil)(t, "") }, 403, "unsolicited"},
		{"wrapping: an unsigned assertion beside the signed one", func(t *testing.T, id string) string {
			l := f.login("corp", id)
			good, err := idpKey.SignAssertion(f.idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			evil := f.idp.Assertion(l)
			evil.Subject.NameID.Value = "admin"
			return encodeResponse(t, f.idp.Response(l), nil, evil.Element(), good)
		}, 400, ""},
		{"wrapping: the signed assertion inside an unsigned one", func(t *testing.T, id string) string {
			l := f.login("corp", id)
			good, err := idpKey.SignAssertion(f.idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			evil := f.idp.Assertion(l)
			evil.Subject.NameID.Value = "admin"
			evilEl := evil.Element()
			evilEl.AddChild(good)
			return encodeResponse(t, f.idp.Response(l), nil, evilEl)
		}, 403, "not signed"},
		{"not base64", func(*testing.T, string) string { return "<samlp:Response/>" }, 400, "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBrowser(t)
			id := f.start(t, b, "corp")
			f.wantRefused(t, c.name, b, f.post(b, "corp", c.build(t, id)), c.status, c.reason)
		})
	}

	t.Run("unsolicited response where IdP-initiated login is allowed", func(t *testing.T) {
		b := newBrowser(t)
		p := f.post(b, "partner", f.response(t, f.login("partner", ""), idpKey, nil, false, nil))
		f.wantSignedIn(t, "IdP-initiated", b, p, "/account", "partner:alice")
	})

	// A comment in the NameID is outside what the signature covers; the
	// NameID must be read whole, never cut short to "alice".
	t.Run("comment in NameID", func(t *testing.T) {
		b := newBrowser(t)
		id := f.start(t, b, "corp")
		l := f.login("corp", id)
		l.NameID = "alice@evil"
		el, err := idpKey.SignAssertion(f.idp.Assertion(l))
		if err != nil {
			t.Fatal(err)
		}
		n := el.FindElement(".//NameID")
		n.SetText("alice")
		n.AddChild(etree.NewComment(" "))
		n.AddChild(etree.NewText("@evil"))
		p := f.post(b, "corp", encodeResponse(t, f.idp.Response(l), nil, el))
		if p.status == http.StatusSeeOther {
			f.wantSignedIn(t, "comment in NameID", b, p, "/oauth2/authorize?", "corp:alice@evil")
		} else {
			f.wantRefused(t, "comment in NameID", b, p, p.status, "")
		}
	})

	t.Run("oversized body", func(t *testing.T) {
		b := newBrowser(t)
		f.start(t, b, "corp")
		p := f.post(b, "corp", strings.Repeat("A", 2<<20))
		f.wantRefused(t, "oversized", b, p, http.StatusRequestEntityTooLarge, "")
	})

	t.Run("request errors", func(t *testing.T) {
		b := newBrowser(t)
		f.wantRefused(t, "no SAMLResponse", b, b.postNoFollow(f.srv.URL+"/saml/corp/acs", url.Values{"RelayState": {"x"}}), 400, "")
		wantErrorPage(t, "GET on the ACS", b.getNoFollow(f.srv.URL+"/saml/corp/acs"), http.StatusMethodNotAllowed)
		wantErrorPage(t, "unknown provider", b.getNoFollow(f.srv.URL+"/saml/nope/login"), http.StatusNotFound)
		wantErrorPage(t, "unknown client in auth", b.getNoFollow(f.srv.URL+"/saml/corp/login?auth="+url.QueryEscape("client_id=nope")), http.StatusBadRequest)
	})

	// The harness reads the server's stderr through a pipe: a line can
	// reach the buffer a moment after the response.
	for _, want := range []string{"SAML login refused", "reason=\"invalid signature\"", "provider=corp"} {
		logged(t, f.srv.logs, 0, want)
	}
	if logs := f.srv.logs.String(); strings.Contains(logs, "<saml:Assertion") || strings.Contains(logs, "SAMLResponse=") {
		t.Error("an assertion reached the server log")
	}
}

// TestSAMLReplay: an accepted assertion is refused the second time, even
// with the binding cookie of the first time, and still after a restart.
func TestSAMLReplay(t *testing.T) {
	f := newSAMLFixture(t)
	b := newBrowser(t)
	id := f.start(t, b, "corp")
	binding := b.client.Jar.Cookies(mustParse(t, f.srv.URL+"/saml/corp/acs"))
	resp := f.response(t, f.login("corp", id), f.idp.Signer, nil, false, nil)
	f.wantSignedIn(t, "first use", b, f.post(b, "corp", resp), "/oauth2/authorize?", "corp:alice")

	replay := func(what string) {
		t.Helper()
		attacker := newBrowser(t)
		attacker.client.Jar.SetCookies(mustParse(t, f.srv.URL+"/saml/"), binding)
		f.wantRefused(t, what, attacker, f.post(attacker, "corp", resp), http.StatusForbidden, "already used")
	}
	replay("replay")
	f.srv.Stop()
	f.srv = startServer(t, f.cfgPath, f.srv.DataDir, "--issuer", samlIssuer)
	replay("replay after a restart")

	// The refusal names alice, so it is in her account's history.
	acct := b.get(f.srv.URL + "/account")
	if !strings.Contains(acct.body, "single sign-on response naming you was refused") {
		t.Errorf("account page lacks the refused replay:\n%s", acct.body)
	}
	logged(t, f.srv.logs, 0, "assertion was already used")
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

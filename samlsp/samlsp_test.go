package samlsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/testsaml"

	"github.com/postern-auth/postern/samlsp/samltest"
	"github.com/postern-auth/postern/storage"
)

// onceStore is an in-memory UseOnce.
type onceStore struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (s *onceStore) UseOnce(_ context.Context, ns, id string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	k := ns + "\x00" + id
	if _, ok := s.seen[k]; ok {
		return storage.ErrAlreadyExists
	}
	s.seen[k] = exp
	return nil
}

const testIssuer = "https://auth.example.com"

type spFixture struct {
	p      *Provider
	idp    *samltest.IdP
	sp     *samltest.Signer // Postern's key pair
	replay *onceStore
}

func newSPFixture(t testing.TB, cfg ProviderConfig) *spFixture {
	t.Helper()
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	spKeys, err := samltest.NewSigner("postern sp")
	if err != nil {
		t.Fatal(err)
	}
	f := &spFixture{idp: idp, sp: spKeys, replay: &onceStore{}}
	if cfg.ID == "" {
		cfg.ID = "corp"
	}
	f.p, err = NewProvider(cfg, Options{Issuer: testIssuer, Key: spKeys.Key, Certificate: spKeys.Cert, Replay: f.replay})
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.SetMetadata(md); err != nil {
		t.Fatal(err)
	}
	return f
}

// login is what a valid assertion for request id says.
func (f *spFixture) login(requestID string) samltest.Login {
	return samltest.Login{
		SPEntityID:   f.p.EntityID(),
		ACS:          f.p.ACSURL(),
		InResponseTo: requestID,
		NameID:       "alice",
		Attributes: map[string]string{
			"urn:oid:0.9.2342.19200300.100.1.3": "alice@corp.example",
			"urn:oid:2.5.4.3":                   "Alice Corp",
		},
	}
}

// encode builds the response: the assertion signed by assertionSigner (nil:
// unsigned), optionally encrypted, in a response signed by responseSigner.
func (f *spFixture) encode(t testing.TB, l samltest.Login, a *saml.Assertion, assertionSigner, responseSigner *samltest.Signer, encrypt bool) string {
	t.Helper()
	el := a.Element()
	if assertionSigner != nil {
		var err error
		if el, err = assertionSigner.SignAssertion(a); err != nil {
			t.Fatal(err)
		}
	}
	if encrypt {
		var err error
		if el, err = samltest.Encrypt(el, f.sp.Cert); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := samltest.ResponseElement(f.idp.Response(l), responseSigner, el)
	if err != nil {
		t.Fatal(err)
	}
	out, err := samltest.Encode(resp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSAMLSPMetadata(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{})
	raw, err := f.p.SPMetadata()
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatalf("metadata does not parse: %v\n%s", err, raw)
	}
	if ed.EntityID != testIssuer+"/saml/corp/metadata" || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("entity %q, %d SP descriptors", ed.EntityID, len(ed.SPSSODescriptors))
	}
	d := ed.SPSSODescriptors[0]
	if len(d.AssertionConsumerServices) != 1 || d.AssertionConsumerServices[0].Location != testIssuer+"/saml/corp/acs" || d.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding {
		t.Errorf("ACS = %+v, want only HTTP-POST at /saml/corp/acs", d.AssertionConsumerServices)
	}
	if d.AuthnRequestsSigned == nil || !*d.AuthnRequestsSigned {
		t.Error("metadata does not say AuthnRequests are signed")
	}
	uses := map[string]bool{}
	want := base64.StdEncoding.EncodeToString(f.sp.Cert.Raw)
	for _, kd := range d.KeyDescriptors {
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			if strings.Join(strings.Fields(c.Data), "") == want {
				uses[kd.Use] = true
			}
		}
	}
	if !uses["signing"] || !uses["encryption"] {
		t.Errorf("SP certificate published for %v, want signing and encryption", uses)
	}
}

func TestSAMLStartLoginSignsRedirect(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{NameIDFormat: NameIDPersistent})
	raw, id, err := f.p.StartLogin(false)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, f.idp.SSOURL+"?") {
		t.Errorf("redirect to %s, want the IdP's SSO URL", raw)
	}
	reqXML, err := testsaml.ParseRedirectRequest(u)
	if err != nil {
		t.Fatal(err)
	}
	var req saml.AuthnRequest
	if err := xml.Unmarshal(reqXML, &req); err != nil {
		t.Fatal(err)
	}
	if req.ID != id || req.AssertionConsumerServiceURL != f.p.ACSURL() || req.Issuer == nil || req.Issuer.Value != f.p.EntityID() || req.Destination != f.idp.SSOURL {
		t.Errorf("AuthnRequest = %+v", req)
	}
	if req.NameIDPolicy == nil || req.NameIDPolicy.Format == nil || *req.NameIDPolicy.Format != NameIDPersistent {
		t.Errorf("NameIDPolicy = %+v, want persistent", req.NameIDPolicy)
	}
	if req.ForceAuthn != nil && *req.ForceAuthn {
		t.Error("ForceAuthn set on an ordinary sign-in")
	}
	// The query signature (saml-bindings §3.4.4.1) verifies with the SP
	// certificate from the metadata.
	q := u.RawQuery
	i := strings.Index(q, "&Signature=")
	if i < 0 || u.Query().Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Fatalf("redirect is not signed with RSA-SHA256: %s", q)
	}
	sig, err := base64.StdEncoding.DecodeString(u.Query().Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(q[:i]))
	if err := rsa.VerifyPKCS1v15(f.sp.Cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("redirect signature does not verify: %v", err)
	}
}

func TestSAMLConsumeAccepts(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{Attributes: map[string]string{"email": "urn:oid:0.9.2342.19200300.100.1.3", "name": "urn:oid:2.5.4.3", "missing": "urn:nothing"}})
	tests := []struct {
		name               string
		signAssertion      bool
		signResponse       bool
		encrypt            bool
		otherPendingBefore bool
	}{
		{name: "signed assertion", signAssertion: true},
		{name: "signed response", signResponse: true},
		{name: "both signed", signAssertion: true, signResponse: true},
		{name: "encrypted signed assertion", signAssertion: true, encrypt: true},
		{name: "encrypted, response signed", signResponse: true, encrypt: true},
		{name: "one of two pending requests", signAssertion: true, otherPendingBefore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqID := samltest.NewID()
			l := f.login(reqID)
			var signA, signR *samltest.Signer
			if tt.signAssertion {
				signA = f.idp.Signer
			}
			if tt.signResponse {
				signR = f.idp.Signer
			}
			ids := []string{reqID}
			if tt.otherPendingBefore {
				ids = []string{samltest.NewID(), reqID}
			}
			got, err := f.p.Consume(context.Background(), f.encode(t, l, f.idp.Assertion(l), signA, signR, tt.encrypt), ids)
			if err != nil {
				t.Fatalf("Consume: %v", err)
			}
			if got.Subject != "corp:alice" || got.NameID != "alice" || got.RequestID != reqID {
				t.Errorf("login = %+v", got)
			}
			if got.Claims["email"] != "alice@corp.example" || got.Claims["name"] != "Alice Corp" || len(got.Claims) != 2 {
				t.Errorf("claims = %v", got.Claims)
			}
		})
	}
}

func TestSAMLConsumeRefuses(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{NameIDFormat: NameIDPersistent})
	stranger, err := samltest.NewSigner("stranger")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()

	type build func(t *testing.T, reqID string) string
	signed := func(mod func(l *samltest.Login), amod func(a *saml.Assertion)) build {
		return func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			if mod != nil {
				mod(&l)
			}
			a := f.idp.Assertion(l)
			if amod != nil {
				amod(a)
			}
			return f.encode(t, l, a, f.idp.Signer, f.idp.Signer, false)
		}
	}
	tests := []struct {
		name     string
		build    build
		reason   string
		noIDs    bool
		subject  string
		assertOK func(t *testing.T, err error)
	}{
		{name: "not base64", build: func(*testing.T, string) string { return "%%%" }, reason: ReasonMalformed},
		{name: "not XML", build: func(*testing.T, string) string { return base64.StdEncoding.EncodeToString([]byte("<Response")) }, reason: ReasonMalformed},
		{name: "unsigned", reason: ReasonUnsigned, build: func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			return f.encode(t, l, f.idp.Assertion(l), nil, nil, false)
		}},
		{name: "signed by a stranger", reason: ReasonUntrustedKey, build: func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			return f.encode(t, l, f.idp.Assertion(l), stranger, stranger, false)
		}},
		{name: "assertion altered after signing", reason: ReasonSignature, build: func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			el, err := f.idp.SignAssertion(f.idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			el.FindElement(".//NameID").SetText("admin")
			resp, _ := samltest.ResponseElement(f.idp.Response(l), nil, el)
			out, _ := samltest.Encode(resp)
			return out
		}},
		{name: "other audience", reason: ReasonAudience, build: signed(func(l *samltest.Login) { l.SPEntityID = "https://other.example.com/sp" }, nil)},
		{name: "wrong destination", reason: ReasonDestination, build: signed(func(l *samltest.Login) { l.ACS = testIssuer + "/saml/other/acs" }, nil)},
		{name: "wrong recipient", reason: ReasonDestination, build: signed(nil, func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://evil.example.com/acs"
		})},
		{name: "expired", reason: ReasonExpired, build: signed(func(l *samltest.Login) { l.Now = now.Add(-10 * time.Minute) }, nil)},
		{name: "not yet valid", reason: ReasonNotYetValid, build: signed(func(l *samltest.Login) { l.Now = now.Add(10 * time.Minute) }, nil)},
		{name: "beyond Postern's skew but within crewjam's", reason: ReasonExpired, subject: "corp:alice", build: signed(nil, func(a *saml.Assertion) {
			a.Conditions.NotOnOrAfter = now.Add(-150 * time.Second)
		})},
		{name: "unknown InResponseTo", reason: ReasonUnknownRequest, build: func(t *testing.T, _ string) string {
			return signed(nil, nil)(t, samltest.NewID())
		}},
		{name: "unsolicited", reason: ReasonUnsolicited, build: func(t *testing.T, _ string) string { return signed(nil, nil)(t, "") }},
		{name: "unsolicited, no pending request", reason: ReasonUnsolicited, noIDs: true, build: func(t *testing.T, _ string) string { return signed(nil, nil)(t, "") }},
		{name: "issuer of another IdP", reason: ReasonIssuer, build: signed(nil, func(a *saml.Assertion) { a.Issuer.Value = "https://other-idp.example.com" })},
		{name: "transient NameID", reason: ReasonNameID, subject: "", build: signed(func(l *samltest.Login) { l.NameIDFormat = string(saml.TransientNameIDFormat) }, nil)},
		{name: "NameID of another format", reason: ReasonNameID, build: signed(func(l *samltest.Login) { l.NameIDFormat = NameIDEmail }, nil)},
		{name: "NameID with a space", reason: ReasonNameID, build: signed(func(l *samltest.Login) { l.NameID = "alice smith" }, nil)},
		{name: "NameID too long", reason: ReasonNameID, build: signed(func(l *samltest.Login) { l.NameID = strings.Repeat("a", 300) }, nil)},
		{name: "failure status", reason: ReasonStatus, build: func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			r := f.idp.Response(l)
			r.Status.StatusCode.Value = "urn:oasis:names:tc:SAML:2.0:status:Responder"
			resp, err := samltest.ResponseElement(r, f.idp.Signer)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := samltest.Encode(resp)
			return out
		}},
		{name: "wrapping: unsigned assertion beside the signed one", build: func(t *testing.T, reqID string) string {
			l := f.login(reqID)
			good, err := f.idp.SignAssertion(f.idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			evil := f.idp.Assertion(l)
			evil.Subject.NameID.Value = "admin"
			resp, _ := samltest.ResponseElement(f.idp.Response(l), nil, evil.Element(), good)
			out, _ := samltest.Encode(resp)
			return out
		}, assertOK: func(t *testing.T, err error) {
			var se *Error
			if !errors.As(err, &se) || se.Reason == "" {
				t.Errorf("err = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqID := samltest.NewID()
			ids := []string{reqID}
			if tt.noIDs {
				ids = nil
			}
			got, err := f.p.Consume(ctx, tt.build(t, reqID), ids)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %T %v, want *Error", err, err)
			}
			if tt.assertOK != nil {
				tt.assertOK(t, err)
			} else if se.Reason != tt.reason {
				t.Errorf("reason %q (%v), want %q", se.Reason, se.Err, tt.reason)
			}
			if tt.subject != "" && se.Subject != tt.subject {
				t.Errorf("subject %q, want %q", se.Subject, tt.subject)
			}
			if strings.Contains(se.Error(), "<") {
				t.Errorf("error carries XML: %v", se)
			}
		})
	}
}

func TestSAMLReplayRefused(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{})
	reqID := samltest.NewID()
	l := f.login(reqID)
	resp := f.encode(t, l, f.idp.Assertion(l), f.idp.Signer, nil, false)
	if _, err := f.p.Consume(context.Background(), resp, []string{reqID}); err != nil {
		t.Fatal(err)
	}
	_, err := f.p.Consume(context.Background(), resp, []string{reqID})
	var se *Error
	if !errors.As(err, &se) || se.Reason != ReasonReplay || se.Subject != "corp:alice" {
		t.Fatalf("replay: err = %v", err)
	}
	for k, exp := range f.replay.seen {
		if !strings.HasPrefix(k, ReplayNamespace+"\x00corp/") || exp.Before(time.Now().Add(4*time.Minute)) {
			t.Errorf("replay record %q until %v, want it kept until the assertion's NotOnOrAfter", k, exp)
		}
	}
}

func TestSAMLIdPInitiated(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{ID: "partner", SubjectPrefix: "p", AllowIDPInitiated: true})
	l := f.login("")
	got, err := f.p.Consume(context.Background(), f.encode(t, l, f.idp.Assertion(l), f.idp.Signer, nil, false), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "p:alice" || got.RequestID != "" {
		t.Errorf("login = %+v", got)
	}
	// An InResponseTo that names no request of this browser is refused
	// even so: a response to someone else's login cannot be reused.
	l = f.login(samltest.NewID())
	_, err = f.p.Consume(context.Background(), f.encode(t, l, f.idp.Assertion(l), f.idp.Signer, nil, false), nil)
	if err == nil {
		t.Fatal("accepted a response to an unknown request")
	}
}

// TestSAMLCommentInNameID: a comment inside the NameID is outside the
// signature's canonical form, so the signature still verifies; the NameID
// must be read whole ("alice@evil"), never cut at the comment ("alice").
func TestSAMLCommentInNameID(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{})
	reqID := samltest.NewID()
	l := f.login(reqID)
	l.NameID = "alice@evil"
	el, err := f.idp.SignAssertion(f.idp.Assertion(l))
	if err != nil {
		t.Fatal(err)
	}
	nameID := el.FindElement(".//NameID")
	nameID.SetText("alice")
	nameID.AddChild(etree.NewComment(" "))
	nameID.AddChild(etree.NewText("@evil"))
	resp, _ := samltest.ResponseElement(f.idp.Response(l), nil, el)
	raw, _ := samltest.Serialize(resp)
	if !bytes.Contains(raw, []byte("alice<!-- -->@evil")) {
		t.Fatalf("comment not injected:\n%s", raw)
	}
	got, err := f.p.Consume(context.Background(), base64.StdEncoding.EncodeToString(raw), []string{reqID})
	if err == nil && got.Subject != "corp:alice@evil" {
		t.Fatalf("comment injection: subject %q", got.Subject)
	}
	t.Logf("outcome: %+v, %v", got, err)
}

func TestSAMLNotReady(t *testing.T) {
	sp, err := samltest.NewSigner("sp")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProvider(ProviderConfig{ID: "corp"}, Options{Issuer: testIssuer, Key: sp.Key, Certificate: sp.Cert, Replay: &onceStore{}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Ready() {
		t.Error("ready without metadata")
	}
	if _, _, err := p.StartLogin(false); !errors.Is(err, ErrNotReady) {
		t.Errorf("StartLogin: %v", err)
	}
	if _, err := p.Consume(context.Background(), "", nil); !errors.Is(err, ErrNotReady) {
		t.Errorf("Consume: %v", err)
	}
	if err := p.SetMetadata([]byte("<nope/>")); err == nil || p.Ready() {
		t.Errorf("bad metadata accepted: %v", err)
	}
	if _, err := p.SPMetadata(); err != nil {
		t.Errorf("SP metadata needs no IdP: %v", err)
	}
}

func TestParseIDPMetadata(t *testing.T) {
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	good, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if ed, err := ParseIDPMetadata(good); err != nil || ed.EntityID != idp.EntityID {
		t.Fatalf("good metadata: %v", err)
	}
	wrap := func(entities ...[]byte) []byte {
		var b bytes.Buffer
		b.WriteString(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">`)
		for _, e := range entities {
			b.Write(e)
		}
		b.WriteString(`</EntitiesDescriptor>`)
		return b.Bytes()
	}
	if ed, err := ParseIDPMetadata(wrap(good)); err != nil || ed.EntityID != idp.EntityID {
		t.Errorf("aggregate of one: %v", err)
	}
	noRedirect := bytes.ReplaceAll(good, []byte(saml.HTTPRedirectBinding), []byte("urn:example:other"))
	noCert := etree.NewDocument()
	if err := noCert.ReadFromBytes(good); err != nil {
		t.Fatal(err)
	}
	for _, kd := range noCert.FindElements("//KeyDescriptor") {
		kd.Parent().RemoveChild(kd)
	}
	noCertRaw, _ := noCert.WriteToBytes()
	tests := map[string]struct {
		raw  []byte
		want string
	}{
		"not XML":              {[]byte("hello"), "not XML"},
		"other root":           {[]byte(`<x/>`), "root is <x>"},
		"two IdPs":             {wrap(good, good), "2 identity providers"},
		"SP metadata":          {[]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></EntityDescriptor>`), "no IDPSSODescriptor"},
		"no redirect binding":  {noRedirect, "HTTP-Redirect"},
		"no signing cert":      {noCertRaw, "no signing certificate"},
		"too large":            {bytes.Repeat([]byte(" "), MaxMetadataBytes+1), "larger than"},
		"no entity ID":         {bytes.Replace(good, []byte(`entityID="`+idp.EntityID+`"`), nil, 1), "no entityID"},
		"bad certificate data": {bytes.Replace(good, []byte(base64.StdEncoding.EncodeToString(idp.Cert.Raw)[:40]), []byte("!!!!"), 1), "certificate"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseIDPMetadata(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMetadataSource(t *testing.T) {
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := idp.Metadata()
	var mu sync.Mutex
	status, body := http.StatusOK, md
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	}))
	defer ts.Close()
	set := func(s int, b []byte) { mu.Lock(); status, body = s, b; mu.Unlock() }

	newProvider := func() *Provider {
		sp, _ := samltest.NewSigner("sp")
		p, err := NewProvider(ProviderConfig{ID: "corp"}, Options{Issuer: testIssuer, Key: sp.Key, Certificate: sp.Cert, Replay: &onceStore{}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cache := filepath.Join(t.TempDir(), "saml", "corp-idp-metadata.xml")
	src := &MetadataSource{Provider: newProvider(), URL: ts.URL, CachePath: cache, Client: ts.Client()}
	if err := src.Load(context.Background()); err != nil || !src.Provider.Ready() {
		t.Fatalf("Load: %v", err)
	}
	if cached, err := os.ReadFile(cache); err != nil || !bytes.Equal(cached, md) {
		t.Errorf("last good copy not cached: %v", err)
	}

	// Down at the next start: the cached copy is used.
	set(http.StatusServiceUnavailable, nil)
	src2 := &MetadataSource{Provider: newProvider(), URL: ts.URL, CachePath: cache, Client: ts.Client()}
	if err := src2.Load(context.Background()); err != nil || !src2.Provider.Ready() {
		t.Errorf("Load with the endpoint down and a cached copy: %v", err)
	}
	// Down and no cache: an error, and the provider is not ready.
	src3 := &MetadataSource{Provider: newProvider(), URL: ts.URL, Client: ts.Client()}
	if err := src3.Load(context.Background()); err == nil || src3.Provider.Ready() {
		t.Errorf("Load with the endpoint down: err = %v", err)
	}
	// Too large, or not metadata: refused, the last good copy stays.
	for name, b := range map[string][]byte{"too large": bytes.Repeat([]byte("x"), MaxMetadataBytes+10), "garbage": []byte("<html/>")} {
		set(http.StatusOK, b)
		if err := src.fetch(context.Background()); err == nil {
			t.Errorf("%s: fetch accepted it", name)
		}
		if !src.Provider.Ready() {
			t.Errorf("%s: provider lost its metadata", name)
		}
	}

	// Run refreshes until its context ends.
	set(http.StatusOK, md)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	src3.Every, src3.Retry = time.Hour, time.Millisecond
	go func() { src3.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !src3.Provider.Ready() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if !src3.Provider.Ready() {
		t.Error("Run never loaded the metadata")
	}
}

func TestMetadataClientRefusesDowngrade(t *testing.T) {
	c := MetadataClient()
	https, _ := http.NewRequest(http.MethodGet, "https://idp.example.com/md", nil)
	plain, _ := http.NewRequest(http.MethodGet, "http://idp.example.com/md", nil)
	if err := c.CheckRedirect(plain, []*http.Request{https}); err == nil {
		t.Error("followed a redirect from https to http")
	}
	if err := c.CheckRedirect(https, []*http.Request{plain}); err != nil {
		t.Errorf("refused http to https: %v", err)
	}
}

// prompt=login reaches the IdP as ForceAuthn: the user authenticates there
// afresh instead of riding the IdP's own session.
func TestSAMLStartLoginForceAuthn(t *testing.T) {
	f := newSPFixture(t, ProviderConfig{})
	raw, _, err := f.p.StartLogin(true)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	reqXML, err := testsaml.ParseRedirectRequest(u)
	if err != nil {
		t.Fatal(err)
	}
	var req saml.AuthnRequest
	if err := xml.Unmarshal(reqXML, &req); err != nil {
		t.Fatal(err)
	}
	if req.ForceAuthn == nil || !*req.ForceAuthn {
		t.Errorf("ForceAuthn = %v, want true", req.ForceAuthn)
	}
}

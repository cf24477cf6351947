package authz

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/samlsp/samltest"
)

// sha1Signature signs el (enveloped) with the IdP's own key as an IdP
// configured for rsa-sha1 does (ADFS offers it): SHA-1 for the signature
// and the digest. The key is the one the metadata trusts, so only the
// SHA-1 policy can refuse what it signs.
func sha1Signature(t *testing.T, s *samltest.Signer, el *etree.Element) *etree.Element {
	t.Helper()
	ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA1SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.ChildElements()[len(signed.ChildElements())-1]
	if !strings.Contains(sig.FindElement(".//SignatureMethod").SelectAttrValue("Algorithm", ""), "rsa-sha1") {
		t.Fatalf("the signature is not rsa-sha1")
	}
	return sig
}

// TestSAMLACSRefusesSHA1 posts to the ACS, from the browser that started
// the sign-in, responses that are valid in every way but one: they are
// signed with SHA-1 (RFC 6194; SAML deployments moved to SHA-256). The
// service provider must refuse them (samlsp sets RejectSHA1Signatures); the
// same response signed with SHA-256 signs the user in.
func TestSAMLACSRefusesSHA1(t *testing.T) {
	const issuer = "https://auth.example.com"
	login := func(id string) samltest.Login {
		return samltest.Login{SPEntityID: issuer + "/saml/corp/metadata", ACS: issuer + "/saml/corp/acs", InResponseTo: id, NameID: "alice"}
	}
	cases := []struct {
		name  string
		build func(t *testing.T, idp *samltest.IdP, l samltest.Login) *etree.Element
		// refused is false for the control: SHA-256 throughout.
		refused bool
	}{
		{"assertion signed with rsa-sha1", func(t *testing.T, idp *samltest.IdP, l samltest.Login) *etree.Element {
			a := idp.Assertion(l)
			a.Signature = sha1Signature(t, idp.Signer, a.Element())
			el, _ := samltest.ResponseElement(idp.Response(l), nil, a.Element())
			return el
		}, true},
		{"response signed with rsa-sha1", func(t *testing.T, idp *samltest.IdP, l samltest.Login) *etree.Element {
			a := idp.Assertion(l)
			r := idp.Response(l)
			build := func() *etree.Element {
				el := r.Element()
				el.AddChild(a.Element())
				return el
			}
			r.Signature = sha1Signature(t, idp.Signer, build())
			return build()
		}, true},
		{"control: assertion signed with rsa-sha256", func(t *testing.T, idp *samltest.IdP, l samltest.Login) *etree.Element {
			a, err := idp.SignAssertion(idp.Assertion(l))
			if err != nil {
				t.Fatal(err)
			}
			el, _ := samltest.ResponseElement(idp.Response(l), nil, a)
			return el
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSAMLFixture(t, issuer)
			cookie, id := f.start(t)
			resp, err := samltest.Encode(tc.build(t, f.idp, login(id)))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/saml/corp/acs", strings.NewReader(url.Values{"SAMLResponse": {resp}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := f.do(req, cookie)
			var session *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == f.srv.jar.sessionName() {
					session = c
				}
			}
			if !tc.refused {
				if rec.Code != http.StatusSeeOther || session == nil {
					t.Fatalf("SHA-256 control: %d, session %v\n%s", rec.Code, session, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), samlsp.ReasonSignature) {
				t.Errorf("SHA-1 response: %d to %q, want 403 %q\n%s", rec.Code, rec.Header().Get("Location"), samlsp.ReasonSignature, rec.Body)
			}
			if session != nil {
				t.Error("a SHA-1 signed response started a login session")
			}
		})
	}
}

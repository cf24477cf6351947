// Package samltest builds SAML responses the way an identity provider
// does, for tests of Postern's service provider: valid ones, and ones with
// exactly one thing wrong (a stranger's signature, no signature, another
// audience, a wrapped assertion). It is test support only; nothing in the
// server imports it.
package samltest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// Signer is a key pair with a self-signed certificate.
type Signer struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// NewSigner generates an RSA 2048 key and a certificate for it.
func NewSigner(cn string) (*Signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Signer{Key: key, Cert: cert}, nil
}

// IdP is an identity provider: its signer, entity ID and SSO URL.
type IdP struct {
	*Signer
	EntityID string
	SSOURL   string
}

// NewIdP makes an identity provider with a fresh key pair.
func NewIdP(entityID, ssoURL string) (*IdP, error) {
	s, err := NewSigner("samltest IdP")
	if err != nil {
		return nil, err
	}
	return &IdP{Signer: s, EntityID: entityID, SSOURL: ssoURL}, nil
}

// Metadata is the IdP's metadata document.
func (i *IdP) Metadata() ([]byte, error) {
	metadataURL, err := url.Parse(i.EntityID)
	if err != nil {
		return nil, err
	}
	ssoURL, err := url.Parse(i.SSOURL)
	if err != nil {
		return nil, err
	}
	idp := saml.IdentityProvider{Key: i.Key, Certificate: i.Cert, MetadataURL: *metadataURL, SSOURL: *ssoURL}
	return xml.MarshalIndent(idp.Metadata(), "", "  ")
}

// Login is what an assertion says, and to whom.
type Login struct {
	SPEntityID   string // audience
	ACS          string // Destination and Recipient
	InResponseTo string // empty for an unsolicited response
	NameID       string
	NameIDFormat string            // empty means persistent
	Attributes   map[string]string // Name → value
	Now          time.Time         // zero means time.Now()
}

func (l Login) now() time.Time {
	if l.Now.IsZero() {
		return time.Now().UTC()
	}
	return l.Now.UTC()
}

// NewID returns a fresh xs:ID value.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "id-" + hex.EncodeToString(b)
}

// Assertion is a valid assertion for l, valid for five minutes.
func (i *IdP) Assertion(l Login) *saml.Assertion {
	now := l.now()
	format := l.NameIDFormat
	if format == "" {
		format = string(saml.PersistentNameIDFormat)
	}
	a := &saml.Assertion{
		ID:           NewID(),
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: i.EntityID},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Format: format, Value: l.NameID},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: l.InResponseTo,
					NotOnOrAfter: now.Add(5 * time.Minute),
					Recipient:    l.ACS,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore:            now.Add(-30 * time.Second),
			NotOnOrAfter:         now.Add(5 * time.Minute),
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: l.SPEntityID}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: now,
			SessionIndex: NewID(),
			AuthnContext: saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{Value: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}},
		}},
	}
	if len(l.Attributes) > 0 {
		st := saml.AttributeStatement{}
		for name, v := range l.Attributes {
			st.Attributes = append(st.Attributes, saml.Attribute{
				Name:       name,
				NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
				Values:     []saml.AttributeValue{{Type: "xs:string", Value: v}},
			})
		}
		a.AttributeStatements = []saml.AttributeStatement{st}
	}
	return a
}

// Response is the Response envelope for l, without assertion.
func (i *IdP) Response(l Login) *saml.Response {
	return &saml.Response{
		ID:           NewID(),
		InResponseTo: l.InResponseTo,
		Version:      "2.0",
		IssueInstant: l.now(),
		Destination:  l.ACS,
		Issuer:       &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: i.EntityID},
		Status:       saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
}

func (s *Signer) context() (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, err
	}
	return ctx, nil
}

// signature signs el (enveloped) and returns the Signature element.
func (s *Signer) signature(el *etree.Element) (*etree.Element, error) {
	ctx, err := s.context()
	if err != nil {
		return nil, err
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, err
	}
	return signed.ChildElements()[len(signed.ChildElements())-1], nil
}

// SignAssertion returns a as an element signed by s, the Signature after
// the Issuer as the schema wants it.
func (s *Signer) SignAssertion(a *saml.Assertion) (*etree.Element, error) {
	a.Signature = nil
	sig, err := s.signature(a.Element())
	if err != nil {
		return nil, fmt.Errorf("sign assertion: %w", err)
	}
	a.Signature = sig
	return a.Element(), nil
}

// ResponseElement returns r holding children (assertions, encrypted or
// not), signed by s, or unsigned when s is nil.
func ResponseElement(r *saml.Response, s *Signer, children ...*etree.Element) (*etree.Element, error) {
	r.Signature = nil
	build := func() *etree.Element {
		el := r.Element()
		for _, c := range children {
			el.AddChild(c.Copy())
		}
		return el
	}
	if s == nil {
		return build(), nil
	}
	sig, err := s.signature(build())
	if err != nil {
		return nil, fmt.Errorf("sign response: %w", err)
	}
	r.Signature = sig
	return build(), nil
}

// Encrypt wraps an assertion element in an EncryptedAssertion for the
// service provider's certificate (RSA-OAEP, AES-256-GCM).
func Encrypt(assertion *etree.Element, spCert *x509.Certificate) (*etree.Element, error) {
	doc := etree.NewDocument()
	doc.SetRoot(assertion.Copy())
	plain, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES256GCM
	data, err := enc.Encrypt(spCert, plain, nil)
	if err != nil {
		return nil, err
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	out := etree.NewElement("saml:EncryptedAssertion")
	out.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	out.AddChild(data)
	return out, nil
}

// Serialize returns el as an XML document.
func Serialize(el *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	return doc.WriteToBytes()
}

// Encode returns el as the SAMLResponse form value (base64 of the XML).
func Encode(el *etree.Element) (string, error) {
	b, err := Serialize(el)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

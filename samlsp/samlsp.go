package samlsp

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/postern-auth/postern/storage"
)

// NameID formats a provider may ask for (saml-core §8.3).
const (
	NameIDUnspecified = string(saml.UnspecifiedNameIDFormat)
	NameIDPersistent  = string(saml.PersistentNameIDFormat)
	NameIDEmail       = string(saml.EmailAddressNameIDFormat)
	nameIDTransient   = string(saml.TransientNameIDFormat)
)

// ReplayNamespace is the storage.Store UseOnce namespace of accepted
// assertion IDs.
const ReplayNamespace = "saml_assertion"

// DefaultClockSkew is the clock difference tolerated between Postern
// and an IdP in the time conditions of an assertion.
const DefaultClockSkew = 2 * time.Minute

// Limits on what an assertion may carry into a login session.
const (
	maxNameIDLen     = 256
	maxClaimValueLen = 1024
	// maxReplayRetention bounds how long an assertion ID is remembered,
	// whatever NotOnOrAfter the IdP wrote; crewjam refuses an assertion
	// issued more than saml.MaxIssueDelay ago in any case.
	maxReplayRetention = 24 * time.Hour
)

// ProviderConfig is one identity provider as configuration describes
// it, already validated by the caller.
type ProviderConfig struct {
	ID          string
	DisplayName string
	// Attributes maps a claim name to the Name of the SAML attribute it is
	// taken from. FriendlyName is never matched: saml-core §2.7.3.1 says it
	// must not be used to identify an attribute.
	Attributes map[string]string
	// SubjectPrefix starts every subject from this IdP ("corp" gives
	// "corp:alice"); local usernames cannot contain a colon, so an IdP can
	// never sign in as a local user.
	SubjectPrefix     string
	AllowIDPInitiated bool
	// NameIDFormat is the format asked for and required of the NameID
	// (a full URI); empty or NameIDUnspecified lets the IdP choose.
	NameIDFormat string
}

// Options are what every provider needs besides its configuration.
type Options struct {
	// Issuer is the authorization server's issuer URL; the entity ID is
	// Issuer/saml/{id}/metadata and the ACS Issuer/saml/{id}/acs.
	Issuer      string
	Key         *rsa.PrivateKey   // from keys.SAMLKeyPair
	Certificate *x509.Certificate // its self-signed certificate
	// Replay records accepted assertion IDs; storage.Store satisfies it.
	Replay OnceStore
	// ClockSkew tolerated in time conditions; zero means DefaultClockSkew.
	ClockSkew time.Duration
	// Now is the clock of Postern's own checks (skew, replay retention);
	// nil means time.Now. crewjam's checks always use the real clock.
	Now func() time.Time
}

// OnceStore is the part of storage.Store the replay check needs.
type OnceStore interface {
	UseOnce(ctx context.Context, namespace, id string, exp time.Time) error
}

// Provider is Postern as a SAML service provider of one identity
// provider: it makes signed AuthnRequests, publishes the SP metadata and
// turns an IdP's response into a login after checking it. It is safe for
// concurrent use; SetMetadata may swap the IdP metadata at any time.
type Provider struct {
	cfg  ProviderConfig
	opts Options
	base saml.ServiceProvider // everything but the IdP metadata
	sp   atomic.Pointer[saml.ServiceProvider]
}

// NewProvider builds the service provider. It has no IdP metadata yet:
// call SetMetadata before Ready reports true.
func NewProvider(cfg ProviderConfig, opts Options) (*Provider, error) {
	if cfg.ID == "" {
		return nil, errors.New("SAML provider: empty ID")
	}
	if opts.Key == nil || opts.Certificate == nil || opts.Replay == nil {
		return nil, fmt.Errorf("SAML provider %s: key, certificate and replay store are required", cfg.ID)
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = cfg.ID
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.ID
	}
	if cfg.NameIDFormat == "" {
		cfg.NameIDFormat = NameIDUnspecified
	}
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = DefaultClockSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	base := strings.TrimSuffix(opts.Issuer, "/") + "/saml/" + url.PathEscape(cfg.ID)
	metadataURL, err := url.Parse(base + "/metadata")
	if err != nil {
		return nil, fmt.Errorf("SAML provider %s: issuer: %w", cfg.ID, err)
	}
	acsURL, _ := url.Parse(base + "/acs")
	p := &Provider{cfg: cfg, opts: opts}
	p.base = saml.ServiceProvider{
		EntityID:          metadataURL.String(),
		Key:               opts.Key,
		Certificate:       opts.Certificate,
		MetadataURL:       *metadataURL,
		AcsURL:            *acsURL,
		AuthnNameIDFormat: saml.NameIDFormat(cfg.NameIDFormat),
		AllowIDPInitiated: cfg.AllowIDPInitiated,
		SignatureMethod:   dsig.RSASHA256SignatureMethod,
		// Only HTTP-POST: Postern never resolves artifacts.
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		RejectSHA1Signatures:             true,
	}
	return p, nil
}

// ID, DisplayName and EntityID describe the provider.
func (p *Provider) ID() string { return p.cfg.ID }

// SubjectPrefix is what every subject from this provider starts with,
// before the colon.
func (p *Provider) SubjectPrefix() string { return p.cfg.SubjectPrefix }
func (p *Provider) DisplayName() string   { return p.cfg.DisplayName }
func (p *Provider) EntityID() string      { return p.base.EntityID }

// ACSURL is where the IdP posts its responses.
func (p *Provider) ACSURL() string { return p.base.AcsURL.String() }

// Ready reports whether IdP metadata is loaded, so logins can start.
func (p *Provider) Ready() bool { return p.sp.Load() != nil }

// SetMetadata parses and checks IdP metadata and, if it is usable, makes it
// the one responses are checked against. On error the previous metadata
// stays in use.
func (p *Provider) SetMetadata(raw []byte) error {
	ed, err := ParseIDPMetadata(raw)
	if err != nil {
		return fmt.Errorf("SAML provider %s: %w", p.cfg.ID, err)
	}
	sp := p.base
	sp.IDPMetadata = ed
	p.sp.Store(&sp)
	return nil
}

// SPMetadata is the service provider's metadata document (entity ID, ACS,
// signing and encryption certificate) to register at the IdP.
func (p *Provider) SPMetadata() ([]byte, error) {
	sp := p.base
	out, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("SAML provider %s: encode metadata: %w", p.cfg.ID, err)
	}
	return append([]byte(xml.Header), out...), nil
}

// ErrNotReady means the IdP metadata has not been loaded (yet).
var ErrNotReady = errors.New("the identity provider's metadata is not available")

// StartLogin makes a signed AuthnRequest for the HTTP-Redirect binding and
// returns the URL to send the browser to and the request's ID, which the
// caller must bind to the browser and hand back to Consume.
func (p *Provider) StartLogin(forceAuthn bool) (redirect, requestID string, err error) {
	sp := p.sp.Load()
	if sp == nil {
		return "", "", ErrNotReady
	}
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", "", fmt.Errorf("SAML provider %s: authn request: %w", p.cfg.ID, err)
	}
	if forceAuthn {
		req.ForceAuthn = &forceAuthn
	}
	u, err := req.Redirect("", sp)
	if err != nil {
		return "", "", fmt.Errorf("SAML provider %s: sign authn request: %w", p.cfg.ID, err)
	}
	return u.String(), req.ID, nil
}

// Login is an accepted assertion, as a login.
type Login struct {
	Subject string // SubjectPrefix:NameID
	NameID  string
	Claims  map[string]string
	// RequestID is the AuthnRequest the assertion answers; empty for an
	// accepted unsolicited (IdP-initiated) response.
	RequestID string
}

// Reasons a response is refused, as Error.Reason. They are short and
// safe to show to the user and to record in the audit log.
const (
	ReasonNotReady       = "identity provider metadata not loaded"
	ReasonMalformed      = "malformed response"
	ReasonUnsigned       = "response is not signed"
	ReasonSignature      = "invalid signature"
	ReasonUntrustedKey   = "signed with a key the identity provider's metadata does not hold"
	ReasonIssuer         = "issuer is not the configured identity provider"
	ReasonAudience       = "assertion is for another service provider"
	ReasonDestination    = "response is addressed to another endpoint"
	ReasonExpired        = "response or assertion expired"
	ReasonNotYetValid    = "response or assertion not yet valid"
	ReasonUnsolicited    = "unsolicited response"
	ReasonUnknownRequest = "response answers no sign-in this browser started"
	ReasonDecryption     = "encrypted assertion could not be decrypted"
	ReasonStatus         = "identity provider reported a failure"
	ReasonReplay         = "assertion was already used"
	ReasonNameID         = "unusable NameID"
	ReasonInvalid        = "response was refused"
)

// Error is a refused response. Subject is set when the assertion was
// authenticated far enough to know whom it names; Err holds detail for the
// server log, never the assertion itself.
type Error struct {
	Reason  string
	Subject string
	Err     error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Consume checks a base64 SAMLResponse posted to the ACS and returns the
// login it establishes. requestIDs are the AuthnRequests this browser
// started with this provider and has not finished; a response must answer
// one of them unless the provider allows IdP-initiated logins and the
// response answers none. Every refusal is a *Error.
//
// crewjam/saml checks the signature (on the Response or on the Assertion,
// with a certificate from the IdP metadata, SHA-1 refused), issuer,
// audience, Destination and Recipient, InResponseTo, status, time
// conditions and decrypts encrypted assertions; Consume adds a tighter
// clock skew, the NameID rules, and the replay check in the store, which
// survives restarts.
func (p *Provider) Consume(ctx context.Context, samlResponse string, requestIDs []string) (*Login, error) {
	sp := p.sp.Load()
	if sp == nil {
		return nil, &Error{Reason: ReasonNotReady, Err: ErrNotReady}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(samlResponse))
	if err != nil || len(raw) == 0 {
		return nil, &Error{Reason: ReasonMalformed, Err: errors.New("SAMLResponse is not base64")}
	}
	a, err := sp.ParseXMLResponse(raw, requestIDs, sp.AcsURL)
	if err != nil {
		return nil, classifySAML(err, unsolicited(raw))
	}
	login, err := p.accept(ctx, a, requestIDs)
	if err != nil {
		return nil, err
	}
	return login, nil
}

// accept applies Postern's own rules to an assertion crewjam accepted.
func (p *Provider) accept(ctx context.Context, a *saml.Assertion, requestIDs []string) (*Login, error) {
	nameID := a.Subject.NameID
	if nameID == nil {
		return nil, &Error{Reason: ReasonNameID, Err: errors.New("assertion has no NameID")}
	}
	if err := checkNameID(nameID, p.cfg.NameIDFormat); err != nil {
		return nil, &Error{Reason: ReasonNameID, Err: err}
	}
	login := &Login{Subject: p.cfg.SubjectPrefix + ":" + nameID.Value, NameID: nameID.Value}
	now := p.opts.Now()
	if reason, err := p.checkTimes(a, now); err != nil {
		return nil, &Error{Reason: reason, Subject: login.Subject, Err: err}
	}
	login.RequestID = answeredRequest(a, requestIDs)
	if login.RequestID == "" && !p.cfg.AllowIDPInitiated {
		// crewjam already refuses this; a second lock on the same door.
		return nil, &Error{Reason: ReasonUnsolicited, Subject: login.Subject, Err: errors.New("no InResponseTo")}
	}
	if a.ID == "" {
		return nil, &Error{Reason: ReasonMalformed, Subject: login.Subject, Err: errors.New("assertion has no ID")}
	}
	err := p.opts.Replay.UseOnce(ctx, ReplayNamespace, p.cfg.ID+"/"+a.ID, replayRetention(a, now, p.opts.ClockSkew))
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return nil, &Error{Reason: ReasonReplay, Subject: login.Subject, Err: fmt.Errorf("assertion %q seen before", a.ID)}
	case err != nil:
		return nil, fmt.Errorf("record SAML assertion ID: %w", err)
	}
	login.Claims = p.claims(a)
	return login, nil
}

// checkNameID accepts a NameID that can name a user for good: not
// transient (a new identity at each login), of the configured format, and
// a short printable string without spaces, so the subject is safe in logs,
// headers and URLs downstream.
func checkNameID(n *saml.NameID, want string) error {
	got := n.Format
	if got == "" {
		got = NameIDUnspecified
	}
	switch {
	case got == nameIDTransient:
		return errors.New("a transient NameID cannot identify a user across logins")
	case want != NameIDUnspecified && got != want:
		return fmt.Errorf("NameID format %s, want %s", got, want)
	case n.Value == "" || len(n.Value) > maxNameIDLen || !utf8.ValidString(n.Value):
		return fmt.Errorf("NameID of %d bytes: want 1 to %d bytes of UTF-8", len(n.Value), maxNameIDLen)
	case strings.IndexFunc(n.Value, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("NameID contains spaces or control characters")
	}
	return nil
}

// checkTimes applies the clock skew Postern allows, tighter than crewjam's
// default of three minutes.
func (p *Provider) checkTimes(a *saml.Assertion, now time.Time) (string, error) {
	skew := p.opts.ClockSkew
	if a.IssueInstant.After(now.Add(skew)) {
		return ReasonNotYetValid, fmt.Errorf("assertion issued at %s, in the future", a.IssueInstant)
	}
	if c := a.Conditions; c != nil {
		if c.NotBefore.After(now.Add(skew)) {
			return ReasonNotYetValid, fmt.Errorf("assertion valid from %s", c.NotBefore)
		}
		if !c.NotOnOrAfter.IsZero() && !now.Before(c.NotOnOrAfter.Add(skew)) {
			return ReasonExpired, fmt.Errorf("assertion valid until %s", c.NotOnOrAfter)
		}
	}
	// One bearer confirmation valid now is enough (saml-core §2.4.1).
	for _, sc := range a.Subject.SubjectConfirmations {
		if d := sc.SubjectConfirmationData; sc.Method == "urn:oasis:names:tc:SAML:2.0:cm:bearer" && d != nil &&
			!d.NotBefore.After(now.Add(skew)) && now.Before(d.NotOnOrAfter.Add(skew)) {
			return "", nil
		}
	}
	return ReasonExpired, errors.New("no bearer subject confirmation is valid now")
}

// answeredRequest returns the request among requestIDs that a bearer
// confirmation of the assertion answers, or "" for an unsolicited one.
// crewjam has checked that any InResponseTo present is one of them.
func answeredRequest(a *saml.Assertion, requestIDs []string) string {
	for _, sc := range a.Subject.SubjectConfirmations {
		if d := sc.SubjectConfirmationData; d != nil && d.InResponseTo != "" {
			for _, id := range requestIDs {
				if id == d.InResponseTo {
					return id
				}
			}
		}
	}
	return ""
}

// replayRetention is how long an assertion ID is remembered: as long as
// crewjam could accept the assertion (IssueInstant plus the issue delay and
// skew it allows), or until its NotOnOrAfter if that is later, but no more
// than a day.
func replayRetention(a *saml.Assertion, now time.Time, skew time.Duration) time.Time {
	exp := a.IssueInstant.Add(saml.MaxIssueDelay + saml.MaxClockSkew)
	later := func(t time.Time) {
		if t = t.Add(max(skew, saml.MaxClockSkew)); t.After(exp) {
			exp = t
		}
	}
	if a.Conditions != nil {
		later(a.Conditions.NotOnOrAfter)
	}
	for _, sc := range a.Subject.SubjectConfirmations {
		if sc.SubjectConfirmationData != nil {
			later(sc.SubjectConfirmationData.NotOnOrAfter)
		}
	}
	if limit := now.Add(maxReplayRetention); exp.After(limit) {
		exp = limit
	}
	if !exp.After(now) {
		exp = now.Add(skew)
	}
	return exp
}

// claims maps the configured attributes to claims: the first value of the
// attribute with that Name. Over-long values are left out.
func (p *Provider) claims(a *saml.Assertion) map[string]string {
	out := map[string]string{}
	for claim, name := range p.cfg.Attributes {
		for _, st := range a.AttributeStatements {
			for _, attr := range st.Attributes {
				if attr.Name != name || len(attr.Values) == 0 || out[claim] != "" {
					continue
				}
				if v := attr.Values[0].Value; v != "" && len(v) <= maxClaimValueLen {
					out[claim] = v
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// classifySAML turns a crewjam error into a Error with a reason.
func classifySAML(err error, unsolicited bool) *Error {
	detail := err
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		// Never the InvalidResponseError itself: its Response field holds
		// the assertion, which must not reach a log.
		detail = ire.PrivateErr
	}
	var bad saml.ErrBadStatus
	reason := ReasonInvalid
	switch {
	case errors.As(detail, &bad):
		reason = ReasonStatus
	case strings.Contains(detail.Error(), "signature element not present"),
		strings.Contains(detail.Error(), "is not signed"):
		reason = ReasonUnsigned
	case errors.Is(detail, saml.ErrUntrustedCertificate):
		reason = ReasonUntrustedKey
	case errors.Is(detail, saml.ErrInvalidSignature):
		reason = ReasonSignature
	case errors.Is(detail, saml.ErrRequestIDMismatch) && unsolicited:
		reason = ReasonUnsolicited
	case errors.Is(detail, saml.ErrRequestIDMismatch):
		reason = ReasonUnknownRequest
	case errors.Is(detail, saml.ErrAudienceMismatch):
		reason = ReasonAudience
	case errors.Is(detail, saml.ErrDestinationMismatch):
		reason = ReasonDestination
	case errors.Is(detail, saml.ErrExpired):
		reason = ReasonExpired
	case errors.Is(detail, saml.ErrNotYetValid):
		reason = ReasonNotYetValid
	case errors.Is(detail, saml.ErrIssuerMismatch):
		reason = ReasonIssuer
	case errors.Is(detail, saml.ErrDecryptionFailed):
		reason = ReasonDecryption
	case errors.Is(detail, saml.ErrMalformedMessage), errors.Is(detail, saml.ErrMissingElement):
		reason = ReasonMalformed
	}
	return &Error{Reason: reason, Err: detail}
}

// unsolicited reports whether the Response element of raw carries no
// InResponseTo. It only chooses the reason shown for a refused response;
// nothing is trusted from it.
func unsolicited(raw []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if el, ok := tok.(xml.StartElement); ok {
			for _, a := range el.Attr {
				if a.Name.Local == "InResponseTo" && a.Name.Space == "" {
					return a.Value == ""
				}
			}
			return true
		}
	}
}

package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// fositeStore adapts storage.Store and the configured clients to the storage
// interfaces fosite's handlers expect. It is the only translation between
// fosite requests and Postern's records.
type fositeStore struct {
	store    storage.Store
	clients  *clientDirectory
	lifetime clients.Lifetimes
	now      func() time.Time
	cache    *decodeCache
	// retry seals the answers kept for the refresh retry window; nil
	// keeps every refresh strictly one-time.
	retry *retrySealer
	// subjectOK says whether a token's user still stands (see
	// Server.subjectActive); tokens of removed users decode as not found.
	subjectOK func(subject, credFP string) bool
	// codeSig is the storage key of an authorization code (the token
	// strategy's signature), for the records fosite keys by the code.
	codeSig func(ctx context.Context, code string) string
}

var (
	_ fosite.Storage                     = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ fositestorage.Transactional        = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
)

// storedRequest is the serialized form of a fosite request. Form values that
// carry credentials are dropped before it is written (see sanitizeForm).
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"at"`
	ClientID          string          `json:"cid"`
	RequestedScope    []string        `json:"rs,omitempty"`
	GrantedScope      []string        `json:"gs,omitempty"`
	RequestedAudience []string        `json:"ra,omitempty"`
	GrantedAudience   []string        `json:"ga,omitempty"`
	Form              url.Values      `json:"f,omitempty"`
	Session           json.RawMessage `json:"s,omitempty"`
}

// credentialParams never reach the store, whatever request they came with.
var credentialParams = []string{"client_secret", "password", "refresh_token", "code", "code_verifier", "client_assertion", "token"}

func sanitizeForm(f url.Values) url.Values {
	if len(f) == 0 {
		return nil
	}
	out := make(url.Values, len(f))
	for k, v := range f {
		out[k] = v
	}
	for _, k := range credentialParams {
		delete(out, k)
	}
	return out
}

func (s *fositeStore) encode(kind storage.Kind, signature string, req fosite.Requester, exp time.Time) (storage.Token, error) {
	sess, _ := req.GetSession().(*Session)
	var raw []byte
	if sess != nil {
		var err error
		if raw, err = json.Marshal(sess); err != nil {
			return storage.Token{}, fmt.Errorf("encode session: %w", err)
		}
	}
	data, err := json.Marshal(storedRequest{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt(),
		ClientID:          req.GetClient().GetID(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              sanitizeForm(req.GetRequestForm()),
		Session:           raw,
	})
	if err != nil {
		return storage.Token{}, fmt.Errorf("encode request: %w", err)
	}
	t := storage.Token{
		Kind:      kind,
		Signature: signature,
		RequestID: req.GetID(),
		ClientID:  req.GetClient().GetID(),
		CreatedAt: s.now().UTC(),
		ExpiresAt: exp.UTC(),
		Active:    true,
		Data:      data,
	}
	if sess != nil {
		t.Subject = sess.Subject
	}
	return t, nil
}

// decode rebuilds a fosite request. A token whose client was removed from
// the configuration decodes as not found: deleting a client cuts its tokens.
func (s *fositeStore) decode(ctx context.Context, t storage.Token, session fosite.Session) (*fosite.Request, error) {
	sess, ok := session.(*Session)
	if !ok || sess == nil {
		sess = newSession()
	}
	key := string(t.Kind) + "\x00" + t.Signature
	d, hit := s.cache.get(key, t.Data)
	if !hit {
		d = &decodedRequest{data: t.Data}
		if err := json.Unmarshal(t.Data, &d.sr); err != nil {
			return nil, fmt.Errorf("decode %s token: %w", t.Kind, err)
		}
		if len(d.sr.Session) > 0 {
			if err := json.Unmarshal(d.sr.Session, &d.sess); err != nil {
				return nil, fmt.Errorf("decode session of %s token: %w", t.Kind, err)
			}
		}
		s.cache.put(key, d)
	}
	client, err := s.clients.get(ctx, d.sr.ClientID)
	switch {
	case errors.Is(err, errUnknownClient):
		return nil, fmt.Errorf("client %q of stored %s token is no longer registered: %w", d.sr.ClientID, t.Kind, fosite.ErrNotFound)
	case err != nil:
		return nil, err
	}
	if d.sess.Subject != "" && s.subjectOK != nil && !s.subjectOK(d.sess.Subject, d.sess.CredFP) {
		return nil, fmt.Errorf("the user of a stored %s token no longer stands: %w", t.Kind, fosite.ErrNotFound)
	}
	d.copySession(sess)
	r := fosite.NewRequest()
	r.ID = d.sr.ID
	r.RequestedAt = d.sr.RequestedAt
	r.Client = client
	r.RequestedScope = slices.Clone(d.sr.RequestedScope)
	r.GrantedScope = slices.Clone(d.sr.GrantedScope)
	r.RequestedAudience = slices.Clone(d.sr.RequestedAudience)
	r.GrantedAudience = slices.Clone(d.sr.GrantedAudience)
	if d.sr.Form != nil {
		r.Form = cloneForm(d.sr.Form)
	}
	r.Session = sess
	return r, nil
}

// expiry picks the record's lifetime from the session, falling back to the
// configured lifetime so that every record can be swept.
func (s *fositeStore) expiry(req fosite.Requester, tt fosite.TokenType, fallback time.Duration) time.Time {
	if sess := req.GetSession(); sess != nil {
		if exp := sess.GetExpiresAt(tt); !exp.IsZero() {
			return exp
		}
	}
	return s.now().Add(fallback)
}

func (s *fositeStore) create(ctx context.Context, kind storage.Kind, sig string, req fosite.Requester, exp time.Time) error {
	t, err := s.encode(kind, sig, req, exp)
	if err != nil {
		return err
	}
	if tx := txFrom(ctx); tx != nil {
		tx.issue = append(tx.issue, t)
		return nil
	}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return fmt.Errorf("store %s token: %w", kind, err)
	}
	return nil
}

func (s *fositeStore) get(ctx context.Context, kind storage.Kind, sig string, session fosite.Session) (*fosite.Request, storage.Token, error) {
	if sig == "" {
		return nil, storage.Token{}, fmt.Errorf("%s token: %w", kind, fosite.ErrNotFound)
	}
	t, err := s.store.GetToken(ctx, kind, sig)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, t, fmt.Errorf("%s token: %w", kind, fosite.ErrNotFound)
	case errors.Is(err, storage.ErrInactive):
		req, derr := s.decode(ctx, t, session)
		if derr != nil {
			return nil, t, derr
		}
		return req, t, storage.ErrInactive
	case err != nil:
		return nil, t, fmt.Errorf("load %s token: %w", kind, err)
	}
	req, err := s.decode(ctx, t, session)
	return req, t, err
}

func (s *fositeStore) delete(ctx context.Context, kind storage.Kind, sig string) error {
	err := s.store.DeleteToken(ctx, kind, sig)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s token: %w", kind, fosite.ErrNotFound)
	}
	return err
}

// redeem marks a one-time token used. Inside a fosite transaction it is
// deferred to Commit, so that the tokens issued for it land atomically.
func (s *fositeStore) redeem(ctx context.Context, kind storage.Kind, sig string) error {
	if tx := txFrom(ctx); tx != nil {
		tx.redeemKind, tx.redeemSig = kind, sig
		return nil
	}
	t, err := s.store.Redeem(ctx, kind, sig, nil, nil)
	return redeemError(kind, t, err)
}

// redeemError tells fosite why a redemption failed. Losing it to another
// request is reuse (fosite wraps the error as the cause of its answer, so
// the token endpoint sees the *reuseError); a token gone in between is a
// *goneError.
func redeemError(kind storage.Kind, t storage.Token, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrInactive):
		return &reuseError{Token: t, fositeErr: fosite.ErrInactiveToken}
	case errors.Is(err, storage.ErrNotFound):
		return &goneError{Kind: kind}
	}
	return fmt.Errorf("redeem %s token: %w", kind, err)
}

// --- fosite.ClientManager

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.clients.fositeGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// maxJTILen bounds client-assertion IDs (RFC 7523 sets none; UUIDs are 36).
const maxJTILen = 256

// ClientAssertionJWTValid defers the replay check to SetClientAssertionJWT,
// whose insert is the atomic check.
func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }

func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if len(jti) > maxJTILen {
		// The store keys markers by it; a client has no reason to send a
		// longer one, and an attacker-sized key must not reach the store.
		return fosite.ErrJTIKnown.WithHint("The client assertion's jti is too long.")
	}
	err := s.store.UseOnce(ctx, "client_assertion", jti, exp)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return fosite.ErrJTIKnown
	}
	return err
}

// --- access tokens

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.create(ctx, storage.AccessToken, sig, req, s.expiry(req, fosite.AccessToken, s.lifetime.AccessToken))
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.get(ctx, storage.AccessToken, sig, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.delete(ctx, storage.AccessToken, sig)
}

// --- refresh tokens

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, _ string, req fosite.Requester) error {
	exp := s.expiry(req, fosite.RefreshToken, s.lifetime.RefreshToken)
	// fosite gives every rotated refresh token a fresh lifetime; the grant
	// as a whole ends refresh_token_ttl after the user authorized it.
	if sess, ok := req.GetSession().(*Session); ok && !sess.GrantStart.IsZero() {
		if limit := sess.GrantStart.Add(s.lifetime.RefreshToken); exp.After(limit) {
			exp = limit
			sess.SetExpiresAt(fosite.RefreshToken, limit)
		}
	}
	return s.create(ctx, storage.RefreshToken, sig, req, exp)
}

// GetRefreshTokenSession reports a redeemed refresh token as inactive with its
// request, which is how fosite learns of reuse and revokes the grant.
func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, t, err := s.get(ctx, storage.RefreshToken, sig, session)
	if errors.Is(err, storage.ErrInactive) {
		return req, &reuseError{Token: t, fositeErr: fosite.ErrInactiveToken}
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteRefreshTokenSession is called by fosite only when a used refresh
// token comes back, to delete it before revoking its grant. A token already
// gone (a concurrent reuse revoked the grant first) is what deleting wants:
// were it an error, fosite would answer "retry" and drop the *reuseError it
// is about to wrap, and the reuse would go unanswered and unaudited.
func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	if err := s.delete(ctx, storage.RefreshToken, sig); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return err
	}
	return nil
}

func (s *fositeStore) RotateRefreshToken(ctx context.Context, _ string, sig string) error {
	return s.redeem(ctx, storage.RefreshToken, sig)
}

// RevokeRefreshToken and RevokeAccessToken both end the whole grant: RFC 7009
// §2.1 asks that revoking a refresh token kill its access tokens, and a grant
// with a dead access token but a live refresh token would only mint new ones.
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revokeGrant(ctx, requestID)
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revokeGrant(ctx, requestID)
}

func (s *fositeStore) revokeGrant(ctx context.Context, requestID string) error {
	ended, _ := ctx.Value(grantEndedKey{}).(*string)
	if ended != nil && requestID != "" && *ended == requestID {
		return nil
	}
	if _, err := s.store.RevokeGrant(ctx, requestID); err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	if ended != nil {
		*ended = requestID
	}
	return nil
}

type grantEndedKey struct{}

// withGrantEnded lets the adapter end a grant once per request. fosite's
// revocation handler calls RevokeRefreshToken and then RevokeAccessToken
// with the same grant; here each ends the whole grant, so the second call
// would be one more write transaction (an fsync on bbolt) that finds
// nothing left to revoke.
func withGrantEnded(ctx context.Context) context.Context {
	return context.WithValue(ctx, grantEndedKey{}, new(string))
}

// --- authorization codes

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	return s.create(ctx, storage.AuthorizationCode, code, req, s.expiry(req, fosite.AuthorizeCode, s.lifetime.AuthorizationCode))
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	req, t, err := s.get(ctx, storage.AuthorizationCode, code, session)
	if errors.Is(err, storage.ErrInactive) {
		// fosite revokes the grant on this error but drops it from its
		// answer; codeGrant (flow_code.go) puts it back.
		return req, &reuseError{Token: t, fositeErr: fosite.ErrInvalidatedAuthorizeCode}
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	return s.redeem(ctx, storage.AuthorizationCode, code)
}

// --- OpenID Connect requests of authorization codes

// CreateOpenIDConnectSession keeps the code's OpenID request (the form
// fosite kept: nonce, max_age, prompt) under the code's signature, never
// the code itself. Like PKCE it is written at the authorization endpoint,
// outside any transaction.
func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) error {
	t, err := s.encode(storage.OpenIDSession, s.codeSig(ctx, code), req, s.expiry(req, fosite.AuthorizeCode, s.lifetime.AuthorizationCode))
	if err != nil {
		return err
	}
	return s.store.CreateToken(ctx, t)
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.get(ctx, storage.OpenIDSession, s.codeSig(ctx, code), newSession())
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if err := s.delete(ctx, storage.OpenIDSession, s.codeSig(ctx, code)); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return err
	}
	return nil
}

// --- PKCE

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	// PKCE data goes straight to the store even inside a transaction: it is
	// written at the authorization endpoint, before any redemption.
	t, err := s.encode(storage.PKCE, sig, req, s.expiry(req, fosite.AuthorizeCode, s.lifetime.AuthorizationCode))
	if err != nil {
		return err
	}
	return s.store.CreateToken(ctx, t)
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.get(ctx, storage.PKCE, sig, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession does nothing: fosite calls it before it compares
// the code_verifier, so deleting here would let one failed exchange strip
// the challenge from a code that is still redeemable (the next attempt
// would then need no verifier). The record shares the code's signature and
// goes when the code is redeemed (Commit), with its grant, or at expiry.
func (s *fositeStore) DeletePKCERequestSession(context.Context, string) error { return nil }

// --- transactions: fosite brackets a redemption and the tokens it issues in
// BeginTX/Commit. Postern collects them and applies them with one atomic
// storage.Redeem, so two concurrent redemptions cannot both issue tokens.

type pendingTx struct {
	redeemKind storage.Kind
	redeemSig  string
	issue      []storage.Token
	// owned: a grant handler began the transaction around fosite's own
	// BeginTX/Commit and commits it itself (commitOwned), with what only it
	// knows: the answer to keep for a refresh retry.
	owned bool
}

type txKey struct{}

func txFrom(ctx context.Context) *pendingTx {
	tx, _ := ctx.Value(txKey{}).(*pendingTx)
	return tx
}

func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	if tx := txFrom(ctx); tx != nil && tx.owned {
		return ctx, nil
	}
	return context.WithValue(ctx, txKey{}, &pendingTx{}), nil
}

func (s *fositeStore) Commit(ctx context.Context) error {
	tx := txFrom(ctx)
	if tx == nil {
		return errors.New("commit without a transaction")
	}
	if tx.owned {
		return nil // its owner commits
	}
	return s.commit(ctx, tx, nil)
}

// beginOwned starts a transaction that fosite's handler joins and that the
// caller ends with commitOwned.
func (s *fositeStore) beginOwned(ctx context.Context) (context.Context, *pendingTx) {
	tx := &pendingTx{owned: true}
	return context.WithValue(ctx, txKey{}, tx), tx
}

func (s *fositeStore) commitOwned(ctx context.Context, tx *pendingTx, retry *storage.Retry) error {
	return s.commit(ctx, tx, retry)
}

func (s *fositeStore) commit(ctx context.Context, tx *pendingTx, retry *storage.Retry) error {
	defer func() { *tx = pendingTx{owned: tx.owned} }()
	if tx.redeemSig != "" {
		t, err := s.store.Redeem(ctx, tx.redeemKind, tx.redeemSig, tx.issue, retry)
		if err := redeemError(tx.redeemKind, t, err); err != nil {
			return err
		}
		if tx.redeemKind == storage.AuthorizationCode {
			// The code's PKCE record (same signature) has served; failing to
			// delete it leaves it to the sweeper, not the client. The
			// OpenID record is read after this commit and deleted then.
			_ = s.store.DeleteToken(ctx, storage.PKCE, tx.redeemSig)
		}
		return nil
	}
	for _, t := range tx.issue {
		if err := s.store.CreateToken(ctx, t); err != nil {
			return fmt.Errorf("store %s token: %w", t.Kind, err)
		}
	}
	return nil
}

func (s *fositeStore) Rollback(ctx context.Context) error {
	if tx := txFrom(ctx); tx != nil {
		*tx = pendingTx{owned: tx.owned}
	}
	return nil
}

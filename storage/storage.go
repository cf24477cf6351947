// Package storage owns the persistence contract of the authorization server:
// the records it keeps (tokens, signing keys, audit events, one-time markers,
// revoked login sessions) and the Store interface every backend implements.
// It speaks the server's own words and knows nothing of fosite, HTTP or
// configuration; backends live in sub-packages (storage/bolt) and all pass
// storage/storagetest.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a caller branches on. Backends wrap them with context; test with errors.Is.
var (
	// ErrNotFound: no record under that key (or it has expired).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a record with that key exists (a replayed one-time ID,
	// a duplicate token signature).
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrInactive: the one-time token was already redeemed. The record is
	// still returned alongside so the caller can revoke its grant.
	ErrInactive = errors.New("storage: token already used")
	// ErrLocked: the store is held by another process.
	ErrLocked = errors.New("storage: store is locked by another process")
	// ErrUnavailable: the backend cannot be reached just now (a database
	// that is down or timing out); the request may succeed if retried.
	ErrUnavailable = errors.New("storage: backend unavailable")
	// ErrNoSpace: a write failed because the backend's disk or quota is
	// full; nothing of it was kept, reads still work, and writes work again
	// once space returns. It wraps ErrUnavailable, so a caller that treats
	// every unavailable backend alike needs no other case.
	ErrNoSpace = fmt.Errorf("storage: no space left for writes: %w", ErrUnavailable)
)

// MaxEventsPerSubject bounds each subject's audit trail in the store.
const MaxEventsPerSubject = 1000

// Kind says what a token record is. The store indexes all kinds alike.
type Kind string

const (
	AccessToken       Kind = "access"
	RefreshToken      Kind = "refresh"
	AuthorizationCode Kind = "code"
	PKCE              Kind = "pkce"
	// OpenIDSession is an authorization code's OpenID Connect request
	// (nonce, max_age), kept under the code's signature until redeemed.
	OpenIDSession Kind = "oidc"
)

// Token is one issued credential. It is keyed by (Kind, Signature): the
// signature is the HMAC or JWT signature part of the token, never the token
// itself, so a copy of the store cannot be replayed as bearer tokens.
type Token struct {
	Kind      Kind
	Signature string
	// RequestID names the grant the token belongs to; every token minted from
	// one authorization (code, its refresh chain) shares it.
	RequestID string
	ClientID  string
	Subject   string // empty for client-credentials tokens
	CreatedAt time.Time
	ExpiresAt time.Time
	// Active is false once a one-time token (code, refresh) was redeemed. The
	// record is kept until it expires so that a replay can be detected.
	Active bool
	// Data is the caller's serialized request; opaque to the store.
	Data []byte
}

// Retry is what a redemption answered, kept next to the redeemed token's
// used-marker so that the same client presenting the token again within a
// short window (a lost response, two tabs at once) gets the very same answer
// instead of tripping reuse detection.
type Retry struct {
	// Successor is the signature of the token of the same kind the
	// redemption issued; once it has been redeemed itself, or is gone, the
	// retry is void.
	Successor string
	// Until ends the window; the record is void after it and swept.
	Until time.Time
	// Sealed is the answer, sealed by the caller; opaque to the store.
	Sealed []byte
}

// RevocationKind says what a revocation event ended.
type RevocationKind string

const (
	// RevokedGrant: every token of one grant (ID is Token.RequestID).
	RevokedGrant RevocationKind = "grant"
	// RevokedSubject: every token of one subject (ID is the subject), as
	// when a user is removed or their password changes.
	RevokedSubject RevocationKind = "subject"
	// RevokedClient: every token of one client (ID is the client ID), as
	// when a client is removed or its secret changes.
	RevokedClient RevocationKind = "client"
)

// Revocation is one event of the revocation feed: what was revoked, told to
// the caches (gateways, replicas) that may still hold it.
type Revocation struct {
	// Seq is assigned by the store when the event commits: strictly
	// increasing in the order events become visible, so a reader that
	// resumes after Seq n misses nothing that commits later.
	Seq  uint64
	Time time.Time // when it was recorded (assigned by the store)
	Kind RevocationKind
	ID   string
	// Subject and ClientID of a revoked grant, for the record.
	Subject  string
	ClientID string
	// Until is the latest expiry among the tokens the event covers: after
	// it, no cache can hold one of them as valid any more.
	Until time.Time
}

// Client is a client registered at runtime (the developer portal, RFC 7591
// dynamic registration), as opposed to one from the configuration file,
// which the store never sees. The store indexes it by owner and keeps its
// metadata opaque.
type Client struct {
	ID string
	// Owner is the subject of the developer who registered it; empty for a
	// client registered by a pipeline through RFC 7591.
	Owner     string
	CreatedAt time.Time
	UpdatedAt time.Time
	// APIs are the catalogue APIs the client subscribes to, in the order
	// it subscribed.
	APIs []string
	// Data is the caller's serialized registration (secret hashes, redirect
	// URIs, grants); opaque to the store.
	Data []byte
}

// Key is a signing key pair. The private half arrives already encrypted by
// package keys; the store never sees key material in the clear.
type Key struct {
	ID        string
	Algorithm string
	CreatedAt time.Time
	// RetireAt is when the key stops being published; zero while it is the
	// active signing key or has not been rotated out.
	RetireAt time.Time
	Active   bool   // the one key new tokens are signed with
	Public   []byte // JWK (JSON) of the public key
	Private  []byte // encrypted private JWK
}

// Event is one audit log entry (logins, revocations, refresh-token reuse).
type Event struct {
	ID        string // assigned by the store when empty; sortable by time
	Time      time.Time
	Type      string // e.g. "refresh_token_reuse", "grant_revoked", "login_failed"
	Subject   string
	ClientID  string
	RequestID string
	IP        string
	UserAgent string
	Detail    string
}

// Consent is a user's remembered "allow" for a client: the scopes they
// agreed to, so the consent page is skipped until they revoke it.
type Consent struct {
	Subject   string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// LoginFailures is the failed-login counter of one key (a username or a
// client address, as the login throttle names them): how many failures in
// a row and when the last one was. The zero value means none on record.
type LoginFailures struct {
	Count int
	Last  time.Time
}

// Store is what the server needs from a backend. Every method is safe for
// concurrent use; every mutation is durable when it returns.
type Store interface {
	// CreateToken stores a new token and indexes it by grant, subject, client
	// and expiry. ErrAlreadyExists if (Kind, Signature) is taken.
	CreateToken(ctx context.Context, t Token) error
	// GetToken returns an unexpired token. A redeemed one-time token comes
	// back with ErrInactive (and the record).
	GetToken(ctx context.Context, kind Kind, signature string) (Token, error)
	// DeleteToken removes one token; ErrNotFound if absent.
	DeleteToken(ctx context.Context, kind Kind, signature string) error
	// Redeem marks an active one-time token used and stores the tokens issued
	// for it, and retry when not nil, in one atomic step: of two concurrent
	// redemptions exactly one succeeds and the other gets ErrInactive (with
	// the record), after which the winner's retry is readable. ErrNotFound
	// if the token does not exist or expired.
	Redeem(ctx context.Context, kind Kind, signature string, issue []Token, retry *Retry) (Token, error)
	// RetryOf returns the retry stored when the token was redeemed, while it
	// stands: the token is still on record and redeemed, now is not after
	// Until, and the successor is on record, unexpired and not redeemed.
	// Otherwise ErrNotFound; a retry whose window has passed is erased.
	// Deleting the token (DeleteToken, RevokeGrant, expiry) deletes its retry.
	RetryOf(ctx context.Context, kind Kind, signature string) (Retry, error)
	// RevokeGrant deletes every token of a grant at once and reports how many
	// it removed (zero is not an error). When it removed an unexpired access
	// token it records a RevokedGrant event in the same transaction, Until
	// the latest expiry among those (caches hold access tokens only).
	RevokeGrant(ctx context.Context, requestID string) (int, error)
	// GrantTokens lists the tokens of one grant, redeemed ones included.
	GrantTokens(ctx context.Context, requestID string) ([]Token, error)
	// SubjectTokens and ClientTokens list unexpired tokens through their
	// indexes, in one read transaction.
	SubjectTokens(ctx context.Context, subject string) ([]Token, error)
	ClientTokens(ctx context.Context, clientID string) ([]Token, error)
	// DeleteExpired removes tokens, retries, revocation events, one-time markers, login-failure
	// counters, revoked session IDs and subject sign-out records that
	// expired before now and reports how many records it removed.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)

	// UseOnce records id in namespace until exp; ErrAlreadyExists if it is
	// already recorded and unexpired (client-assertion JTIs, SAML assertion IDs).
	UseOnce(ctx context.Context, namespace, id string, exp time.Time) error

	// AddLoginFailure records a failed login against key, atomically (of
	// concurrent calls on one key none is lost): if the record is absent,
	// expired, or its Last lies more than forgetAfter before now, Count
	// starts again from zero; then Count goes up by one and Last becomes
	// now. The record expires at now+forgetAfter. It returns the new state.
	// Keys are arbitrary strings (any bytes, empty included), each
	// independent of every other.
	AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (LoginFailures, error)
	// LoginFailures returns the counter of key: the zero value, not an
	// error, when there is none or it has expired.
	LoginFailures(ctx context.Context, key string) (LoginFailures, error)
	// ClearLoginFailures deletes the counter of key (after a good login);
	// no error when there is none.
	ClearLoginFailures(ctx context.Context, key string) error

	// RevokeSession records that the login session id was signed out,
	// until its natural expiry: a copy of its cookie must not sign anyone
	// in again. The record is swept by DeleteExpired after until. Calling
	// it again is harmless; the record then lasts until the later until.
	// IDs are arbitrary strings, each independent of every other.
	RevokeSession(ctx context.Context, id string, until time.Time) error
	// SessionRevoked reports whether id was revoked: false when there is no
	// record or it has expired (by the store's clock).
	SessionRevoked(ctx context.Context, id string) (bool, error)
	// EndSubjectSessions signs a subject out everywhere: every login
	// session of the subject that started at or before at is void. The
	// record lasts until until (now plus the longest session lifetime) and
	// is swept by DeleteExpired after it. While a record is live, a later
	// call moves at forward, never backward, and until likewise; an
	// expired record is replaced.
	EndSubjectSessions(ctx context.Context, subject string, at, until time.Time) error
	// SubjectSessionsEndedAt returns the at of the subject's live record:
	// the zero time, not an error, when there is none or it has expired.
	SubjectSessionsEndedAt(ctx context.Context, subject string) (time.Time, error)

	// The revocation feed. AppendRevocation records an event (Seq and Time
	// are assigned) and returns it as stored. Revocations returns the
	// events after position after, in Seq order, at most limit. An event is
	// kept until both its Until and the store's retention (at least the
	// longest access-token lifetime) have passed, then swept by
	// DeleteExpired. RevocationRange reports the newest Seq (head) and the
	// highest Seq swept so far (floor): a reader whose position is below
	// floor may have missed events and must start over.
	AppendRevocation(ctx context.Context, r Revocation) (Revocation, error)
	Revocations(ctx context.Context, after uint64, limit int) ([]Revocation, error)
	RevocationRange(ctx context.Context) (floor, head uint64, err error)

	// --- Clients registered at runtime (developer portal, RFC 7591) ---
	//
	// CreateClient stores a new client; ErrAlreadyExists if its ID is taken.
	// GetClient returns ErrNotFound when there is none. UpdateClient
	// replaces the client with what fn returns, atomically with the read fn
	// is given (two concurrent rotations cannot lose one another); fn's
	// error is returned wrapped and nothing changes; fn may not change ID,
	// Owner or CreatedAt (the store keeps the old ones); ErrNotFound when
	// there is no such client. ListClients returns an owner's clients,
	// oldest first (by CreatedAt, then ID). AllClients returns every
	// registered client, of every owner, ordered by ID (bytewise); it reads
	// them all, so it is for a rare scan (the CORS origins), not a request.
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
	ListClients(ctx context.Context, owner string) ([]Client, error)
	AllClients(ctx context.Context) ([]Client, error)
	// DeleteClient removes a client and every token issued to it in one
	// transaction and reports how many tokens it removed; when one of them
	// was an unexpired access token it records a RevokedClient event in the
	// same transaction, Until the latest expiry among those, so that the
	// caches drop them at once. ErrNotFound when there is no such client.
	DeleteClient(ctx context.Context, id string) (int, error)

	// Keys returns every stored signing key.
	Keys(ctx context.Context) ([]Key, error)
	// UpdateKeys replaces the key set with what fn returns, atomically with
	// the read it is given, so two processes cannot both rotate.
	UpdateKeys(ctx context.Context, fn func(old []Key) ([]Key, error)) error

	// AppendEvent adds an audit event, keeping at most MaxEventsPerSubject
	// of a subject's newest events (older ones are dropped, so the log
	// cannot grow without bound); ListEvents returns a subject's newest
	// events first, at most limit.
	AppendEvent(ctx context.Context, e Event) error
	ListEvents(ctx context.Context, subject string, limit int) ([]Event, error)

	// PutConsent stores (or replaces) a remembered consent; GetConsent
	// returns ErrNotFound when there is none; ListConsents returns a
	// subject's consents ordered by client ID; DeleteConsent returns
	// ErrNotFound when there was nothing to delete.
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, subject, clientID string) (Consent, error)
	ListConsents(ctx context.Context, subject string) ([]Consent, error)
	DeleteConsent(ctx context.Context, subject, clientID string) error

	// --- Named blobs and leases (ACME certificates, issue 16) ---
	// Small opaque values under a name, shared by every process on the
	// store (ACME certificates and the account key, sealed by the caller),
	// and a lease so that of several replicas one does a piece of work
	// (ordering a certificate) while the others wait for its result.
	//
	// GetBlob returns ErrNotFound when there is no blob of that name.
	// PutBlob stores (or replaces) it; DeleteBlob removes it, with no error
	// when there is none. Names are arbitrary strings, each independent.
	GetBlob(ctx context.Context, name string) ([]byte, error)
	PutBlob(ctx context.Context, name string, data []byte) error
	DeleteBlob(ctx context.Context, name string) error
	// TryLease gives the lease name to holder until now+ttl (the store's
	// clock) when nobody holds it, its holder's time is up, or holder
	// already has it (which extends it), atomically: of concurrent callers
	// with different holders exactly one gets true. ReleaseLease ends
	// holder's lease early; no error when holder does not hold it.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error

	// Close releases the store; pending writes are flushed first.
	Close() error
}

// RevocationNotifier is offered by a store that hears of revocations other
// processes commit (PostgreSQL, through LISTEN/NOTIFY), so that the
// revocation feed wakes its streams at once instead of at its next poll.
// The channel is closed when the next revocation is heard of; ask again
// for the one after. A nil channel means no notices (never ready).
type RevocationNotifier interface {
	RevocationNotices() <-chan struct{}
}

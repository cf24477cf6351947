package authz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// backchannel delivers OpenID Connect Back-Channel Logout 1.0 logout
// tokens to the clients of a user who signed out. Delivery never holds up
// the sign-out: it runs after the answer, each attempt bounded by a
// timeout, a bounded number of attempts, a bounded number of deliveries
// at once; a delivery that fails for good is audited for the user and
// logged for the operator.
type backchannel struct {
	issuer   string
	keys     KeySet
	store    storage.Store
	clients  *clientDirectory
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	attempts int
	pause    time.Duration
	slots    chan struct{}
}

const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

func newBackchannel(s *Server) *backchannel {
	return &backchannel{
		issuer: s.cfg.Issuer, keys: s.keys, store: s.store, clients: s.directory, log: s.log, now: s.cfg.Now,
		// A logout endpoint answers at once or not at all; redirects are
		// not followed (§2.8 has none).
		client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		attempts: 3,
		pause:    time.Second,
		slots:    make(chan struct{}, 32),
	}
}

// notify sends a logout token to every client with a backchannel_logout_uri
// that holds live tokens of subject. sid is the login session's, or empty
// when every session of the user ended.
func (b *backchannel) notify(r *http.Request, subject, sid string) {
	ctx := context.WithoutCancel(r.Context())
	toks, err := b.store.SubjectTokens(ctx, subject)
	if err != nil {
		b.log.Error("back-channel logout: list the user's clients", "subject", subject, "error", err)
		return
	}
	var targets []*clients.Client
	for _, t := range toks {
		c, ok := b.clients.find(ctx, t.ClientID)
		if !ok || c.BackchannelLogoutURI == "" || !t.Active || slices.Contains(targets, c) {
			continue
		}
		targets = append(targets, c)
	}
	ip, ua := clientIP(r), r.UserAgent()
	for _, c := range targets {
		go b.deliver(ctx, c, subject, sid, ip, ua)
	}
}

func (b *backchannel) deliver(ctx context.Context, c *clients.Client, subject, sid, ip, ua string) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.attempts)*(b.client.Timeout+b.pause))
	defer cancel()
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	case <-ctx.Done():
		b.failed(ctx, c, subject, ip, ua, fmt.Errorf("too many deliveries at once"))
		return
	}
	token, err := b.logoutToken(c.ID, subject, sid)
	if err != nil {
		b.failed(ctx, c, subject, ip, ua, err)
		return
	}
	for i := range b.attempts {
		retry, err := b.post(ctx, c.BackchannelLogoutURI, token)
		if err == nil {
			b.log.Info("back-channel logout delivered", "client_id", c.ID, "subject", subject)
			return
		}
		if !retry || i == b.attempts-1 {
			b.failed(ctx, c, subject, ip, ua, err)
			return
		}
		select {
		case <-time.After(b.pause):
		case <-ctx.Done():
			b.failed(ctx, c, subject, ip, ua, err)
			return
		}
	}
}

// post delivers one logout token; retry says whether trying again may help
// (a 4xx answer says it will not).
func (b *backchannel) post(ctx context.Context, uri, token string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return false, fmt.Errorf("the client answered %d", resp.StatusCode)
	}
	return true, fmt.Errorf("the client answered %d", resp.StatusCode)
}

func (b *backchannel) failed(ctx context.Context, c *clients.Client, subject, ip, ua string, err error) {
	b.log.Warn("back-channel logout failed", "client_id", c.ID, "subject", subject, "uri", c.BackchannelLogoutURI, "error", err)
	ev := storage.Event{Time: b.now().UTC(), Type: "backchannel_logout_failed", Subject: subject, ClientID: c.ID, IP: ip, UserAgent: ua, Detail: err.Error()}
	if err := b.store.AppendEvent(context.WithoutCancel(ctx), ev); err != nil {
		b.log.Error("record audit event", "type", ev.Type, "error", err)
	}
}

// logoutToken is the signed logout token (Back-Channel Logout 1.0 §2.4).
func (b *backchannel) logoutToken(clientID, subject, sid string) (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := b.now().UTC()
	claims := map[string]any{
		"iss":    b.issuer,
		"aud":    clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    base64.RawURLEncoding.EncodeToString(jti[:]),
		"sub":    subject,
		"events": map[string]any{logoutEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("logout token claims: %w", err)
	}
	tok, err := b.keys.Sign(payload, map[jose.HeaderKey]any{"typ": "logout+jwt"})
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return tok, nil
}

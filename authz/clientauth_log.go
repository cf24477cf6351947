package authz

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
)

// clientAuthLog tells an operator why a client was refused at the token,
// introspection or revocation endpoint (a mistyped secret is the most
// common first-hour mistake, and the client only ever sees
// invalid_client). Info level, the client_id and the reason, never the
// secret or the assertion; at most one line a second, so a client retrying
// in a loop, or someone guessing, cannot flood the log: the next line
// counts the ones left out.
type clientAuthLog struct {
	log     *slog.Logger
	last    atomic.Int64 // unix second of the last line
	skipped atomic.Int64
}

func (l *clientAuthLog) failed(r *http.Request, err error, answer *oauthError) {
	now := time.Now().Unix()
	if l.last.Swap(now) == now {
		l.skipped.Add(1)
		return
	}
	l.log.InfoContext(r.Context(), "client authentication failed", "client_id", presentedClientID(r), "reason", clip(authFailureReason(err, answer), maxLoggedReason),
		"endpoint", r.URL.Path, "ip", clientIP(r), "not_logged_since_last", l.skipped.Swap(0))
}

// What a refusal logs of the request is cut to these many bytes: the
// client_id, and fosite's hint, which quotes client_assertion_type, a
// key ID or an algorithm as sent, can fill the 1 MiB body, and one line a
// second of that would still fill a disk (and every trace span). No
// client has a longer ID (clientDirectory refuses them).
const (
	maxLoggedClientID = 128
	maxLoggedReason   = 512
)

// presentedClientID is the client_id the request claims, from HTTP Basic
// or the form, cut to maxLoggedClientID; the secret next to it is never
// read here.
func presentedClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return clip(u, maxLoggedClientID)
		}
		return clip(id, maxLoggedClientID)
	}
	return clip(r.PostForm.Get("client_id"), maxLoggedClientID)
}

// clip cuts s to at most n bytes, on a rune boundary, and says it did.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// authFailureReason is fosite's hint and debug text when it refused the
// client (neither holds the secret), else Postern's own description.
func authFailureReason(err error, answer *oauthError) string {
	if errors.Is(err, fosite.ErrNotFound) {
		return "no such client"
	}
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		if reason := strings.TrimSpace(rfc.HintField + " " + rfc.Debug()); reason != "" {
			return reason
		}
	}
	return answer.Description
}

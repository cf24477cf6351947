package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Requests the gateway cannot read as carrying one bearer token (RFC 6750
// §3.1 invalid_request).
var (
	errMalformedAuth = errors.New("malformed Authorization header")
	errTwoMethods    = errors.New("bearer token in both the Authorization header and the query")
)

// bearerToken reads the token from the Authorization header, the only
// place the gateway accepts one (RFC 6750 §2.1): tokens in query strings
// end up in logs and Referer headers, and form bodies would have to be
// read before proxying. "" with a nil error means no bearer credentials.
// A token in the header and an access_token query parameter as well is
// two methods, which RFC 6750 §2 forbids; it is refused rather than
// ignored, since the query copy would otherwise travel on.
func bearerToken(r *http.Request) (string, error) {
	tok, err := headerToken(r)
	if err == nil && tok != "" {
		if _, found := withoutQueryToken(r.URL.RawQuery); found {
			return "", errTwoMethods
		}
	}
	return tok, err
}

func headerToken(r *http.Request) (string, error) {
	vals := r.Header["Authorization"]
	if len(vals) == 0 {
		return "", nil
	}
	if len(vals) > 1 {
		return "", errMalformedAuth
	}
	scheme, tok, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", nil // Basic or another scheme: no bearer token offered
	}
	tok = strings.TrimLeft(tok, " ")
	if !isB64Token(tok) {
		return "", errMalformedAuth
	}
	return tok, nil
}

// withoutQueryToken removes every access_token parameter (RFC 6750 §2.3)
// from a raw query, keeping the rest byte for byte. Names are compared
// after percent-decoding and without case, and ';' separates parameters
// as well as '&': whichever way a backend framework reads the query, it
// must not find a token there. found reports whether one was removed.
func withoutQueryToken(raw string) (rest string, found bool) {
	var b strings.Builder
	start := 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '&' && raw[i] != ';' {
			continue
		}
		seg := raw[start:i]
		name, _, _ := strings.Cut(seg, "=")
		if dec, err := url.QueryUnescape(name); strings.EqualFold(name, "access_token") || (err == nil && strings.EqualFold(dec, "access_token")) {
			if !found {
				found = true
				b.Grow(len(raw))
				b.WriteString(raw[:max(start-1, 0)]) // the kept part so far, without this separator
			}
		} else if found {
			if b.Len() > 0 {
				b.WriteByte(raw[start-1])
			}
			b.WriteString(seg)
		}
		start = i + 1
	}
	if !found {
		return raw, false
	}
	return b.String(), true
}

// isB64Token is RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// challenge answers with a Bearer challenge (RFC 6750 §3). errCode ""
// is the bare challenge for a request that offered no token.
func (g *Gateway) challenge(w http.ResponseWriter, status int, errCode, desc, scope string) {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(g.realm)
	b.WriteByte('"')
	if errCode != "" {
		b.WriteString(`, error="`)
		b.WriteString(errCode)
		b.WriteByte('"')
	}
	if scope != "" {
		b.WriteString(`, scope="`)
		b.WriteString(scope)
		b.WriteByte('"')
	}
	w.Header().Set("WWW-Authenticate", b.String())
	if errCode == "" {
		errCode = "unauthorized"
	}
	writeError(w, status, errCode, desc)
}

// writeError sends a small JSON error body in the OAuth style. It never
// carries internal detail (upstream addresses, server errors): those go to
// the log.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	noteOutcome(w, code)
	w.WriteHeader(status)
	// code and desc are constants of this package: no escaping needed.
	body := `{"error":"` + code + `"`
	if desc != "" {
		body += `,"error_description":"` + desc + `"`
	}
	_, _ = w.Write([]byte(body + "}\n"))
}

// setRateLimitHeaders reports the caller's bucket on every response of a
// rate-limited route (draft-ietf-httpapi-ratelimit-headers field names).
func setRateLimitHeaders(h http.Header, d decision) {
	h["Ratelimit-Limit"] = []string{strconv.Itoa(d.limit)}
	h["Ratelimit-Remaining"] = []string{strconv.Itoa(d.remaining)}
	reset := 0
	if d.reset > 0 {
		reset = ceilSeconds(d.reset)
	}
	h["Ratelimit-Reset"] = []string{strconv.Itoa(reset)}
	if !d.allowed {
		h["Retry-After"] = []string{strconv.Itoa(ceilSeconds(d.retryAfter))}
	}
}

var rateLimitHeaders = []string{"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(d)))
}

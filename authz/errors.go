package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/storage"
)

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	Status      int
	Code        string
	Description string
	// RetryAfter, in seconds, is sent as Retry-After when positive; a 503
	// without one says 1.
	RetryAfter int
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(format string, args ...any) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, args...)}
}

func writeJSONError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	noteOutcome(w, code)
	w.WriteHeader(status)
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	_ = json.NewEncoder(w).Encode(body)
}

// writeOAuthError answers with e. Every 401 carries a Basic challenge: RFC
// 6749 §5.2 requires it when the client used HTTP Basic, and RFC 9110
// §15.5.2 requires a challenge on any 401.
func writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="postern", charset="UTF-8"`)
	}
	switch {
	case e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	case e.Status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSONError(w, e.Status, e.Code, e.Description)
}

// tokenEndpointCodes are the only error codes RFC 6749 §5.2 allows at the
// token endpoint, plus the two §4.1.2.1 server-side ones.
var tokenEndpointCodes = map[string]int{
	"invalid_request":         http.StatusBadRequest,
	"invalid_client":          http.StatusUnauthorized,
	"invalid_grant":           http.StatusBadRequest,
	"unauthorized_client":     http.StatusBadRequest,
	"unsupported_grant_type":  http.StatusBadRequest,
	"invalid_scope":           http.StatusBadRequest,
	"server_error":            http.StatusInternalServerError,
	"temporarily_unavailable": http.StatusServiceUnavailable,
}

// fromFosite translates a fosite error into an RFC 6749 one. fosite has
// codes of its own (token_inactive, request_unauthorized, ...) that no
// client library knows; they become the RFC code with the same meaning.
func fromFosite(err error) *oauthError {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe
	}
	if errors.Is(err, storage.ErrUnavailable) {
		return &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "The service is briefly unavailable; retry."}
	}
	if errors.Is(err, fosite.ErrJTIKnown) {
		// RFC 7523 §3.2: a replayed client assertion fails authentication.
		return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "The client assertion was already used."}
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	code := rfc.ErrorField
	if _, rfcCode := tokenEndpointCodes[code]; !rfcCode {
		switch {
		case errors.Is(err, fosite.ErrScopeNotGranted):
			code = "invalid_scope"
		case errors.Is(err, fosite.ErrInactiveToken), errors.Is(err, fosite.ErrTokenExpired),
			errors.Is(err, fosite.ErrTokenSignatureMismatch), errors.Is(err, fosite.ErrTokenClaim),
			errors.Is(err, fosite.ErrInvalidatedAuthorizeCode), errors.Is(err, fosite.ErrRequestUnauthorized),
			errors.Is(err, fosite.ErrNotFound):
			code = "invalid_grant"
		}
	}
	status, ok := tokenEndpointCodes[code]
	if !ok {
		code, status = "invalid_request", http.StatusBadRequest
	}
	desc := rfc.GetDescription()
	if status >= 500 {
		// Server-side detail stays in the log.
		desc = ""
	}
	return &oauthError{Status: status, Code: code, Description: desc}
}

// readForm parses an OAuth endpoint's POST body the way RFC 6749 §3.2 and
// RFC 7009/7662 ask: POST, form-encoded, bounded, no repeated parameter.
func readForm(w http.ResponseWriter, r *http.Request) *oauthError {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &oauthError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "The endpoint accepts only POST."}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return errInvalidRequest("The body must be application/x-www-form-urlencoded.")
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &oauthError{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: fmt.Sprintf("The body exceeds %d bytes.", tooBig.Limit)}
		}
		return errInvalidRequest("The body is not a valid form encoding.")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return errInvalidRequest("Parameter %q is included more than once.", k)
		}
	}
	return nil
}

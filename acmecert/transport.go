package acmecert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
)

// maxCABody bounds what is read of a CA response to inspect it.
const maxCABody = 1 << 20

// caTransport sits between autocert's ACME client and the CA, for two
// things autocert does not offer:
//
//   - The configured challenge only. autocert always tries tls-alpn-01
//     first and falls back to http-01 after a failed validation; with
//     challenge http-01 (port 443 not reachable by the CA) that would burn
//     a failed validation, which the CA rate-limits, on every order. So
//     authorizations reach autocert listing only the configured challenge.
//   - The CA's problem documents in the log. autocert swallows the error of
//     a failed challenge and of a failed renewal; the transport logs every
//     problem document the CA answers with, and the error of every
//     authorization that turned invalid.
type caTransport struct {
	next      http.RoundTripper
	challenge string
	log       *slog.Logger
}

func (t *caTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/problem+json" && ct != "application/json" {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCABody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("acme: read %s: %w", req.URL, err)
	}
	if ct == "application/problem+json" {
		t.logProblem(req, body)
	} else if out, ok := t.filterAuthz(req, body); ok {
		body = out
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

type problem struct {
	Type        string `json:"type"`
	Detail      string `json:"detail"`
	Status      int    `json:"status"`
	Subproblems []struct {
		Type       string `json:"type"`
		Detail     string `json:"detail"`
		Identifier struct {
			Value string `json:"value"`
		} `json:"identifier"`
	} `json:"subproblems"`
}

func (p problem) attrs(prefix string) []any {
	out := []any{prefix + "type", p.Type, prefix + "detail", p.Detail}
	for _, sp := range p.Subproblems {
		out = append(out, prefix+"subproblem", sp.Identifier.Value+": "+sp.Type+": "+sp.Detail)
	}
	return out
}

func (t *caTransport) logProblem(req *http.Request, body []byte) {
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.log.Warn("acme: the CA answered with an unreadable problem document", "url", req.URL.String(), "body", string(body))
		return
	}
	// A stale nonce is routine: the client fetches a fresh one and retries.
	level := slog.LevelWarn
	if strings.HasSuffix(p.Type, ":badNonce") {
		level = slog.LevelDebug
	}
	t.log.Log(req.Context(), level, "acme: the CA refused a request", append([]any{"url", req.URL.String()}, p.attrs("problem_")...)...)
}

// filterAuthz rewrites an authorization object (RFC 8555 §7.1.4) so that it
// lists only the configured challenge, and logs why one turned invalid.
// Other JSON passes untouched (ok false).
func (t *caTransport) filterAuthz(req *http.Request, body []byte) (out []byte, ok bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj["challenges"] == nil || obj["identifier"] == nil {
		return nil, false
	}
	var chals []map[string]json.RawMessage
	var ident struct {
		Value string `json:"value"`
	}
	var status string
	if json.Unmarshal(obj["challenges"], &chals) != nil || json.Unmarshal(obj["identifier"], &ident) != nil {
		return nil, false
	}
	_ = json.Unmarshal(obj["status"], &status)
	kept := chals[:0]
	for _, c := range chals {
		var typ string
		_ = json.Unmarshal(c["type"], &typ)
		if status == "invalid" && c["error"] != nil {
			var p problem
			_ = json.Unmarshal(c["error"], &p)
			t.log.Warn("acme: the CA could not validate a challenge",
				append([]any{"domain", ident.Value, "challenge", typ, "url", req.URL.String()}, p.attrs("problem_")...)...)
		}
		if typ == t.challenge {
			kept = append(kept, c)
		}
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return nil, false
	}
	obj["challenges"] = raw
	out, err = json.Marshal(obj)
	return out, err == nil
}

package authz

import (
	"context"
	"errors"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// codeGrant is fosite's authorization-code handler with the one cause it
// drops put back. When a used code comes back, fosite revokes the grant and
// answers with a fresh ErrInvalidGrant that no longer wraps what the store
// returned (handler/oauth2/flow_authorize_code_token.go), unlike every other
// storage error it passes on. Without the *reuseError the token endpoint
// could not tell a replayed code from a mistyped one, and would neither
// revoke nor audit.
type codeGrant struct {
	*oauth2.AuthorizeExplicitGrantHandler
}

func (g codeGrant) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	// A copy of the handler for this request, reading the store through
	// codeReads, which keeps what the store said about the code.
	h := *g.AuthorizeExplicitGrantHandler
	reads := &codeReads{CoreStorage: h.CoreStorage}
	h.CoreStorage = reads
	err := h.HandleTokenEndpointRequest(ctx, req)
	if err != nil && reads.reuse != nil && !errors.As(err, new(*reuseError)) {
		return fosite.ErrorToRFC6749Error(err).WithWrap(reads.reuse)
	}
	return err
}

// codeReads is the store as one codeGrant request sees it.
type codeReads struct {
	oauth2.CoreStorage
	reuse *reuseError
}

func (c *codeReads) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	req, err := c.CoreStorage.GetAuthorizeCodeSession(ctx, code, session)
	var reuse *reuseError
	if errors.As(err, &reuse) {
		c.reuse = reuse
	}
	return req, err
}

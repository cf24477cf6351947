package authz

import (
	"context"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
)

// requiredParams refuses a token request that lacks a parameter its grant
// cannot do without (RFC 6749 §4.1.3, §6) with invalid_request. fosite's
// handlers would look the empty value up as a token, find nothing and say
// invalid_grant, which tells the client its grant is bad rather than its
// request. Composed ahead of the grant handlers, it runs after client
// authentication, so invalid_client still comes first, and tokenOutcome
// still answers unauthorized_client to a client without the grant.
var requiredParams = requiredParamsHandler{
	clients.GrantAuthorizationCode: {"code"},
	clients.GrantRefreshToken:      {"refresh_token"},
}

type requiredParamsHandler map[string][]string

func (p requiredParamsHandler) params(req fosite.AccessRequester) []string {
	if gt := req.GetGrantTypes(); len(gt) == 1 {
		return p[gt[0]]
	}
	return nil
}

func (p requiredParamsHandler) CanHandleTokenEndpointRequest(_ context.Context, req fosite.AccessRequester) bool {
	return len(p.params(req)) > 0
}

func (p requiredParamsHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// HandleTokenEndpointRequest never accepts a request: with every parameter
// present it answers ErrUnknownRequest, and fosite goes on to the grant's
// own handler.
func (p requiredParamsHandler) HandleTokenEndpointRequest(_ context.Context, req fosite.AccessRequester) error {
	for _, name := range p.params(req) {
		if req.GetRequestForm().Get(name) == "" {
			return fosite.ErrInvalidRequest.WithHintf("Parameter %q is missing.", name)
		}
	}
	return fosite.ErrUnknownRequest
}

func (p requiredParamsHandler) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	return fosite.ErrUnknownRequest
}

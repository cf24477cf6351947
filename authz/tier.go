package authz

import (
	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
)

// claimTier names the rate-limit tier of the token's client, in
// introspection answers and JWT access tokens: a gateway applies it, so
// subscribing an app to an API in the portal needs no gateway change.
const claimTier = "tier"

// clientTier is the tier the client's API subscriptions give it now; ""
// for configured clients and apps subscribed to no API with a tier.
func clientTier(c fosite.Client) string {
	if cc, ok := c.(*clients.Client); ok {
		return cc.Tier
	}
	return ""
}

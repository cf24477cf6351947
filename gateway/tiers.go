package gateway

import (
	"log/slog"
	"sync"
)

// tierChooser picks the rate limit of an authenticated request, first
// match wins: the client's entry in client_tiers (the operator's word),
// then the tier the token names (the app's API subscriptions at the
// server) when this gateway defines it, then the route's tier.
type tierChooser struct {
	byName  map[string]*tierState
	clients map[string]*tierState
	log     *slog.Logger

	mu     sync.Mutex
	warned map[string]bool // tier names already logged as unknown
	muted  bool            // maxUnknownTierWarnings reached and said so
}

// maxUnknownTierWarnings bounds the names remembered: each is logged once,
// and a server naming ever new tiers cannot grow the gateway's memory.
const maxUnknownTierWarnings = 64

// invalidTierName stands for every token tier that could not be a tier
// name at all (too long, odd characters): logged once, never quoted.
const invalidTierName = "\x00invalid"

func newTierChooser(byName map[string]*tierState, clientTiers map[string]string, log *slog.Logger) *tierChooser {
	c := &tierChooser{byName: byName, clients: map[string]*tierState{}, log: log, warned: map[string]bool{}}
	for clientID, tier := range clientTiers {
		c.clients[clientID] = byName[tier]
	}
	return c
}

func (c *tierChooser) choose(rt *route, id *Identity) *tierState {
	if t, ok := c.clients[id.ClientID]; ok {
		return t
	}
	if id.Tier != "" {
		if t, ok := c.byName[id.Tier]; ok {
			return t
		}
		c.warnUnknown(id.Tier)
	}
	return rt.tier
}

// warnUnknown logs a tier name the server uses and this gateway's tiers
// lack (the catalogue and the gateway config disagree), once per name.
func (c *tierChooser) warnUnknown(name string) {
	if !tierNamePattern.MatchString(name) {
		name = invalidTierName
	}
	c.mu.Lock()
	seen, muted := c.warned[name], c.muted
	full := len(c.warned) >= maxUnknownTierWarnings
	switch {
	case seen || muted:
	case full:
		c.muted = true
	default:
		c.warned[name] = true
	}
	c.mu.Unlock()
	switch {
	case seen || muted:
	case full:
		c.log.Warn("tokens name more tiers this gateway does not define; no longer logging them", "logged", maxUnknownTierWarnings)
	case name == invalidTierName:
		c.log.Warn("a token names a tier that is not a valid tier name; its route's tier applies")
	default:
		c.log.Warn("a token names a tier this gateway does not define; its route's tier applies (define it in tiers, or fix the API's tier at the server)", "tier", name)
	}
}

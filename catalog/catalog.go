package catalog

import (
	"github.com/postern-auth/postern/confjson"
)

// API is one entry of the catalogue. Treat it as read-only: the Catalog
// that holds it is shared by every request.
type API struct {
	ID          string
	Name        string
	Description string
	// BaseURL is where clients call the API, through the gateway.
	BaseURL string
	// Scopes the API offers: sorted by name when the file gave an object,
	// in the file's order when it gave an array.
	Scopes []Scope
	// Tier is the gateway tier its subscribers get; "" for none.
	Tier string
	// OpenAPIFile is the openapi setting as written ("" for none);
	// OpenAPI is the document read from it (see ReadOpenAPI).
	OpenAPIFile string
	OpenAPI     *Document
	// Path is "apis[i]", for errors found after parsing.
	Path string
}

// Scope is a scope an API offers and what it lets a client do, in words
// for the user who is asked to allow it.
type Scope struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Catalog is the API catalogue of one configuration. It never changes
// once built; a nil *Catalog is the empty catalogue.
type Catalog struct {
	apis   []*API
	byID   map[string]*API
	scopes map[string]scopeEntry
}

type scopeEntry struct {
	api         *API
	description string
}

// New builds the catalogue of apis, in their order. It refuses two APIs
// with one ID, and a scope offered by two APIs: a scope belongs to one
// API, so that subscribing to an API says which scopes a client may ask
// for, and the consent page has one description to show.
func New(apis []*API) (*Catalog, error) {
	c := &Catalog{byID: make(map[string]*API, len(apis)), scopes: map[string]scopeEntry{}}
	for _, a := range apis {
		if other, dup := c.byID[a.ID]; dup {
			return nil, confjson.Errorf(a.Path+".id", "%q is already used by %s", a.ID, other.Path)
		}
		c.byID[a.ID] = a
		for _, s := range a.Scopes {
			if other, dup := c.scopes[s.Name]; dup {
				return nil, confjson.Errorf(a.Path+".scopes."+s.Name, "is already offered by %s (%s); a scope belongs to one API", other.api.Path, other.api.ID)
			}
			c.scopes[s.Name] = scopeEntry{api: a, description: s.Description}
		}
		c.apis = append(c.apis, a)
	}
	return c, nil
}

// APIs lists the catalogue in configuration order.
func (c *Catalog) APIs() []*API {
	if c == nil {
		return nil
	}
	return append([]*API(nil), c.apis...)
}

// API finds an API by ID.
func (c *Catalog) API(id string) (*API, bool) {
	if c == nil {
		return nil, false
	}
	a, ok := c.byID[id]
	return a, ok
}

// ScopeDescription is the human description of scope, if an API offers it.
func (c *Catalog) ScopeDescription(scope string) (string, bool) {
	if c == nil {
		return "", false
	}
	e, ok := c.scopes[scope]
	return e.description, ok
}

// APIOfScope is the API that offers scope.
func (c *Catalog) APIOfScope(scope string) (*API, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.scopes[scope]
	return e.api, ok
}

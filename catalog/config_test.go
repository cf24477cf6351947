package catalog

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/postern-auth/postern/confjson"
)

const okScopes = `"scopes": {"orders.read": "Read your orders"}`

func TestParseAPIConfigErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	for _, tt := range []struct {
		name, entry string
		path, want  string
	}{
		{"unknown field", `{"id": "a", "name": "A", "base_url": "https://x", ` + okScopes + `, "colour": 1}`, "apis[0]", `unknown field "colour"`},
		{"id missing", `{"name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "is required"},
		{"id upper case", `{"id": "Orders", "name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "a-z 0-9"},
		{"id slash", `{"id": "a/b", "name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "appears in URLs"},
		{"id dot dot", `{"id": "..", "name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "starting with a letter or digit"},
		{"id too long", `{"id": "` + strings.Repeat("a", 65) + `", "name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "1-64"},
		{"id not a string", `{"id": 7, "name": "A", "base_url": "https://x", ` + okScopes + `}`, "apis[0].id", "expected string"},
		{"name missing", `{"id": "a", "base_url": "https://x", ` + okScopes + `}`, "apis[0].name", "is required"},
		{"name blank", `{"id": "a", "name": "  ", "base_url": "https://x", ` + okScopes + `}`, "apis[0].name", "is required"},
		{"name too long", `{"id": "a", "name": "` + long(101) + `", "base_url": "https://x", ` + okScopes + `}`, "apis[0].name", "longer than 100"},
		{"description too long", `{"id": "a", "name": "A", "description": "` + long(2001) + `", "base_url": "https://x", ` + okScopes + `}`, "apis[0].description", "longer than 2000"},
		{"base_url missing", `{"id": "a", "name": "A", ` + okScopes + `}`, "apis[0].base_url", "is required"},
		{"base_url relative", `{"id": "a", "name": "A", "base_url": "/orders", ` + okScopes + `}`, "apis[0].base_url", "not an absolute URL"},
		{"base_url plain http", `{"id": "a", "name": "A", "base_url": "http://api.example.com", ` + okScopes + `}`, "apis[0].base_url", "only allowed for loopback"},
		{"base_url ftp", `{"id": "a", "name": "A", "base_url": "ftp://api.example.com", ` + okScopes + `}`, "apis[0].base_url", "want an https URL"},
		{"base_url query", `{"id": "a", "name": "A", "base_url": "https://api.example.com/v1?x=1", ` + okScopes + `}`, "apis[0].base_url", "must not contain a query"},
		{"base_url bare fragment", `{"id": "a", "name": "A", "base_url": "https://api.example.com/v1#", ` + okScopes + `}`, "apis[0].base_url", "fragment"},
		{"base_url user info", `{"id": "a", "name": "A", "base_url": "https://u:p@api.example.com", ` + okScopes + `}`, "apis[0].base_url", "user info"},
		{"scopes missing", `{"id": "a", "name": "A", "base_url": "https://x"}`, "apis[0].scopes", "is required"},
		{"scopes null", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": null}`, "apis[0].scopes", "is required"},
		{"scopes empty object", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {}}`, "apis[0].scopes", "at least one"},
		{"scopes empty array", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": []}`, "apis[0].scopes", "at least one"},
		{"scopes a string", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": "orders.read"}`, "apis[0].scopes", "expected an object"},
		{"object: not a scope token", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"orders read": "Read"}}`, "apis[0].scopes.orders read", "not a scope token"},
		{"object: empty name", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"": "Read"}}`, "apis[0].scopes.", "not a scope token"},
		{"object: description not a string", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"orders.read": {"text": "Read"}}}`, "apis[0].scopes.orders.read", "a string"},
		{"object: description empty", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"orders.read": " "}}`, "apis[0].scopes.orders.read", "description is empty"},
		{"object: description too long", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"orders.read": "` + long(201) + `"}}`, "apis[0].scopes.orders.read", "longer than 200"},
		{"object: scope twice", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": {"orders.read": "Read", "orders.read": "Read again"}}`, "apis[0].scopes.orders.read", "listed twice"},
		{"array: unknown field", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"name": "orders.read", "description": "Read", "x": 1}]}`, "apis[0].scopes[0]", `unknown field "x"`},
		{"array: entry not an object", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": ["orders.read"]}`, "apis[0].scopes[0]", "expected an object"},
		{"array: name missing", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"description": "Read"}]}`, "apis[0].scopes[0].name", "is required"},
		{"array: name with quote", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"name": "a\"b", "description": "Read"}]}`, "apis[0].scopes[0].name", "not a scope token"},
		{"array: description missing", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"name": "orders.read"}]}`, "apis[0].scopes[0].description", "description is empty"},
		{"array: description too long", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"name": "orders.read", "description": "` + long(201) + `"}]}`, "apis[0].scopes[0].description", "longer than 200"},
		{"array: scope twice", `{"id": "a", "name": "A", "base_url": "https://x", "scopes": [{"name": "o.r", "description": "R"}, {"name": "o.w", "description": "W"}, {"name": "o.r", "description": "R"}]}`, "apis[0].scopes[2].name", "already listed at apis[0].scopes[0]"},
		{"tier with space", `{"id": "a", "name": "A", "base_url": "https://x", ` + okScopes + `, "tier": "gold plus"}`, "apis[0].tier", "tier names"},
		{"openapi not a string", `{"id": "a", "name": "A", "base_url": "https://x", ` + okScopes + `, "openapi": {"file": "x"}}`, "apis[0].openapi", "expected string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAPIConfig("apis[0]", json.RawMessage(tt.entry))
			var ce *confjson.Error
			if !asConfigError(err, &ce) {
				t.Fatalf("ParseAPIConfig = %+v, %v; want a config error at %s", a, err, tt.path)
			}
			if ce.Path != tt.path || !strings.Contains(ce.Msg, tt.want) {
				t.Errorf("error %q (path %q); want path %q and %q", err, ce.Path, tt.path, tt.want)
			}
		})
	}
}

func asConfigError(err error, ce **confjson.Error) bool {
	e, ok := err.(*confjson.Error)
	*ce = e
	return ok
}

func TestParseAPIConfigScopeForms(t *testing.T) {
	obj, err := ParseAPIConfig("apis[0]", json.RawMessage(`{
		"id": "orders", "name": "Orders", "description": "Your orders.",
		"base_url": "https://api.example.com/orders/v1",
		"scopes": {"orders.write": "Place orders", "orders.read": "Read your orders", "orders.admin": "Manage every order"},
		"tier": "gold", "openapi": "orders.yaml"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &API{
		ID: "orders", Name: "Orders", Description: "Your orders.", BaseURL: "https://api.example.com/orders/v1",
		// The object form lists scopes by name.
		Scopes:      []Scope{{"orders.admin", "Manage every order"}, {"orders.read", "Read your orders"}, {"orders.write", "Place orders"}},
		Tier:        "gold",
		OpenAPIFile: "orders.yaml",
		Path:        "apis[0]",
	}
	if !reflect.DeepEqual(obj, want) {
		t.Errorf("object form:\n got %+v\nwant %+v", obj, want)
	}

	arr, err := ParseAPIConfig("apis[1]", json.RawMessage(`{
		"id": "search.v2", "name": "Search", "base_url": "http://127.0.0.1:8080",
		"scopes": [{"name": "search.query", "description": "Search the index"}, {"name": "search.admin", "description": "Rebuild the index"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// The array form keeps the file's order.
	if got := arr.Scopes; !reflect.DeepEqual(got, []Scope{{"search.query", "Search the index"}, {"search.admin", "Rebuild the index"}}) {
		t.Errorf("array form scopes = %+v", got)
	}
	if arr.BaseURL != "http://127.0.0.1:8080" {
		t.Errorf("loopback http base_url = %q", arr.BaseURL)
	}
}

func parseAll(t *testing.T, entries ...string) []*API {
	t.Helper()
	var apis []*API
	for i, e := range entries {
		a, err := ParseAPIConfig(confjson.Index("apis", i), json.RawMessage(e))
		if err != nil {
			t.Fatal(err)
		}
		apis = append(apis, a)
	}
	return apis
}

func TestNewRefusesDuplicates(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries []string
		want    string
	}{
		{"same id", []string{
			`{"id": "orders", "name": "A", "base_url": "https://x", "scopes": {"a": "A"}}`,
			`{"id": "orders", "name": "B", "base_url": "https://y", "scopes": {"b": "B"}}`,
		}, `config: apis[1].id: "orders" is already used by apis[0]`},
		{"scope in two APIs", []string{
			`{"id": "orders", "name": "A", "base_url": "https://x", "scopes": {"orders.read": "Read"}}`,
			`{"id": "billing", "name": "B", "base_url": "https://y", "scopes": {"invoices.read": "I"}}`,
			`{"id": "shop", "name": "C", "base_url": "https://z", "scopes": [{"name": "cart", "description": "C"}, {"name": "orders.read", "description": "Read"}]}`,
		}, `config: apis[2].scopes.orders.read: is already offered by apis[0] (orders); a scope belongs to one API`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(parseAll(t, tt.entries...))
			if err == nil || err.Error() != tt.want {
				t.Errorf("New = %v, %v; want error %q", c, err, tt.want)
			}
		})
	}
}

func TestCatalogLookups(t *testing.T) {
	c, err := New(parseAll(t,
		`{"id": "orders", "name": "Orders", "base_url": "https://x", "scopes": {"orders.write": "Place orders", "orders.read": "Read your orders"}}`,
		`{"id": "billing", "name": "Billing", "base_url": "https://y", "scopes": [{"name": "invoices.read", "description": "Read your invoices"}]}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range c.APIs() {
		ids = append(ids, a.ID)
	}
	if !reflect.DeepEqual(ids, []string{"orders", "billing"}) {
		t.Errorf("APIs() in order %v, want config order", ids)
	}
	// A caller's changes to the list do not reach the catalogue.
	c.APIs()[0] = nil
	if c.APIs()[0] == nil {
		t.Error("APIs() hands out the catalogue's own slice")
	}
	if a, ok := c.API("billing"); !ok || a.Name != "Billing" {
		t.Errorf("API(billing) = %v, %v", a, ok)
	}
	if _, ok := c.API("shipping"); ok {
		t.Error("API(shipping) found an API")
	}
	if d, ok := c.ScopeDescription("orders.read"); !ok || d != "Read your orders" {
		t.Errorf("ScopeDescription(orders.read) = %q, %v", d, ok)
	}
	if d, ok := c.ScopeDescription("invoices.read"); !ok || d != "Read your invoices" {
		t.Errorf("ScopeDescription(invoices.read) = %q, %v", d, ok)
	}
	if _, ok := c.ScopeDescription("openid"); ok {
		t.Error("ScopeDescription(openid) found a description")
	}
	if a, ok := c.APIOfScope("orders.write"); !ok || a.ID != "orders" {
		t.Errorf("APIOfScope(orders.write) = %v, %v", a, ok)
	}
	if _, ok := c.APIOfScope("openid"); ok {
		t.Error("APIOfScope(openid) found an API")
	}
}

func TestEmptyCatalog(t *testing.T) {
	empty, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Catalog{"New(nil)": empty, "nil": nil} {
		if len(c.APIs()) != 0 {
			t.Errorf("%s: APIs() = %v", name, c.APIs())
		}
		if _, ok := c.API("orders"); ok {
			t.Errorf("%s: API found", name)
		}
		if _, ok := c.ScopeDescription("orders.read"); ok {
			t.Errorf("%s: description found", name)
		}
		if _, ok := c.APIOfScope("orders.read"); ok {
			t.Errorf("%s: API of scope found", name)
		}
	}
	if c, err := (*Catalog)(nil).ReadOpenAPI("."); c != nil || err != nil {
		t.Errorf("nil.ReadOpenAPI = %v, %v", c, err)
	}
}

package catalog

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadDocument(t *testing.T) {
	pets := func(path string, scopes ...string) Operation { return Operation{Path: path, Scopes: scopes} }
	withOp := func(o Operation, method, id, summary string) Operation {
		o.Method, o.OperationID, o.Summary = method, id, summary
		return o
	}
	for _, tt := range []struct {
		file, contentType, spec, title, version string
		ops                                     []Operation
	}{
		{"petstore-3.0.yaml", ContentTypeYAML, "OpenAPI 3.0.3", "Petstore", "1.2.0", []Operation{
			// security: [] turns the document's default off.
			withOp(pets("/health"), "GET", "health", "Liveness"),
			// The document's default requirement applies.
			withOp(pets("/pets", "pets.read"), "GET", "listPets", "List all pets"),
			withOp(pets("/pets", "pets.write"), "POST", "createPet", "Add a pet"),
			// Of two alternatives, only the oauth2 one names scopes.
			withOp(pets("/pets/{petId}", "pets.write"), "DELETE", "deletePet", "Remove a pet"),
			withOp(pets("/pets/{petId}", "pets.read"), "GET", "showPetById", "Info for a specific pet"),
		}},
		{"petstore-3.1.json", ContentTypeJSON, "OpenAPI 3.1.0", "Petstore", "2.0.0", []Operation{
			withOp(pets("/pets", "pets.read"), "GET", "listPets", "List all pets"),
			withOp(pets("/pets/{petId}", "pets.read"), "GET", "showPetById", "Info for a specific pet"),
		}},
		{"petstore-swagger2.json", ContentTypeJSON, "Swagger 2.0", "Petstore", "1.0.0", []Operation{
			withOp(pets("/pets", "pets.read"), "GET", "listPets", "List all pets"),
			withOp(pets("/pets", "pets.write"), "POST", "createPet", "Add a pet"),
			withOp(pets("/pets/{petId}", "pets.read"), "GET", "showPetById", "Info for a specific pet"),
		}},
		{"petstore-swagger2.yaml", ContentTypeYAML, "Swagger 2.0", "Petstore", "1.0.0", []Operation{
			withOp(pets("/pets", "pets.read"), "GET", "listPets", "List all pets"),
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			file := filepath.Join("testdata", tt.file)
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := ReadDocument(file)
			if err != nil {
				t.Fatal(err)
			}
			if d.File != file || d.ContentType != tt.contentType || d.Spec != tt.spec || d.Title != tt.title || d.Version != tt.version {
				t.Errorf("document %q %q %q %q %q; want %q %q %q %q %q", d.File, d.ContentType, d.Spec, d.Title, d.Version, file, tt.contentType, tt.spec, tt.title, tt.version)
			}
			if string(d.Raw) != string(raw) {
				t.Error("Raw is not the file as written")
			}
			if !reflect.DeepEqual(d.Operations, tt.ops) {
				t.Errorf("operations:\n got %+v\nwant %+v", d.Operations, tt.ops)
			}
		})
	}
}

func TestReadDocumentErrors(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"syntax-error.yaml", "invalid YAML: yaml: line 6: did not find expected ',' or ']'"},
		{"syntax-error.json", "invalid JSON at line 4, column 13: invalid character ','"},
		{"missing-info.yaml", "invalid OpenAPI 3.0.3 document: invalid info: must be an object"},
		{"missing-paths.yaml", "invalid OpenAPI 3.0.3 document: invalid paths: must be an object"},
		{"swagger2-missing-paths.json", "invalid Swagger 2.0 document: invalid paths: must be an object"},
		{"not-openapi.yaml", `neither "openapi" (3.x) nor "swagger" (2.0) is set`},
		{"external-file-ref.yaml", `$ref "pet.yaml#/Pet" points outside the document; external references are not followed`},
		{"no-such-file.yaml", "no such file or directory"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			file := filepath.Join("testdata", tt.file)
			d, err := ReadDocument(file)
			if err == nil {
				t.Fatalf("ReadDocument(%s) = %+v, want an error", file, d)
			}
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to name %s and say %q", err, file, tt.want)
			}
		})
	}
}

func TestParseDocumentVersions(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{`{"openapi": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}`, `openapi "2.0" is not supported`},
		{`{"openapi": "4.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}`, `openapi "4.0.0" is not supported`},
		{`{"swagger": "1.2", "info": {"title": "t", "version": "1"}, "paths": {}}`, `swagger "1.2" is not supported`},
		{"openapi: 3.0\ninfo: {title: t, version: '1'}\npaths: {}\n", `"openapi" must be a string`},
		{`{"openapi": "", "paths": {}}`, `"openapi" is empty`},
		{`{"openapi": "3.0.3", "swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}`, `both "openapi" and "swagger" are set`},
		// Structurally wrong below the top: a path that does not start with a slash.
		{`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"pets": {"get": {"responses": {"200": {"description": "ok"}}}}}}`, `invalid OpenAPI 3.0.3 document: invalid paths: path "pets" does not start with a forward slash`},
	} {
		d, err := ParseDocument([]byte(tt.doc), "doc")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDocument(%s) = %+v, %v; want error %q", tt.doc, d, err, tt.want)
		}
	}
}

// An external $ref to a URL is refused before anything is fetched: loading
// a configuration must not reach the network.
func TestParseDocumentNeverFetchesRefs(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Pet": {"type": "object"}}`))
	}))
	defer srv.Close()
	ref := srv.URL + "/pet.json#/Pet"
	doc := `{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/pets": {"get": {"responses": {"200": {"description": "ok",
		"content": {"application/json": {"schema": {"$ref": ` + jsonString(ref) + `}}}}}}}}}`
	d, err := ParseDocument([]byte(doc), "doc.json")
	if err == nil || !strings.Contains(err.Error(), "points outside the document") || !strings.Contains(err.Error(), ref) {
		t.Errorf("ParseDocument = %+v, %v; want the external $ref refused", d, err)
	}
	// Swagger 2.0 goes through the conversion's own resolution.
	doc2 := `{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/pets": {"get": {"responses": {"200": {"description": "ok",
		"schema": {"$ref": ` + jsonString(ref) + `}}}}}}}`
	d, err = ParseDocument([]byte(doc2), "doc2.json")
	if err == nil || !strings.Contains(err.Error(), ref) {
		t.Errorf("Swagger 2.0: ParseDocument = %+v, %v; want the external $ref refused", d, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the $ref's server got %d requests, want none", n)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestReadDocumentSizeBound(t *testing.T) {
	dir := t.TempDir()
	head := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"
	pad := func(n int) []byte {
		b := []byte(head)
		return append(b, []byte("#"+strings.Repeat("x", n-len(head)-2)+"\n")...)
	}
	at := filepath.Join(dir, "at.yaml")
	over := filepath.Join(dir, "over.yaml")
	if err := os.WriteFile(at, pad(MaxOpenAPIBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, pad(MaxOpenAPIBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDocument(at); err != nil {
		t.Errorf("a document of exactly MaxOpenAPIBytes: %v", err)
	}
	if _, err := ReadDocument(over); err == nil || !strings.Contains(err.Error(), over+" is larger than") {
		t.Errorf("a document one byte over: %v, want a size error naming it", err)
	}
}

// A relative openapi path is taken from the configuration file's
// directory, not the working directory.
func TestReadOpenAPI(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("testdata/petstore-3.0.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "apis"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "apis", "pets.yaml"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("testdata/petstore-swagger2.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(parseAll(t,
		`{"id": "pets", "name": "Pets", "base_url": "https://x", "scopes": {"pets.read": "Read pets"}, "openapi": "apis/pets.yaml"}`,
		`{"id": "legacy", "name": "Legacy", "base_url": "https://y", "scopes": {"legacy": "Use the old API"}, "openapi": `+jsonString(abs)+`}`,
		`{"id": "bare", "name": "Bare", "base_url": "https://z", "scopes": {"bare": "Bare"}}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := c.ReadOpenAPI(dir)
	if err != nil {
		t.Fatal(err)
	}
	pets, _ := loaded.API("pets")
	legacy, _ := loaded.API("legacy")
	bare, _ := loaded.API("bare")
	if pets.OpenAPI == nil || pets.OpenAPI.File != filepath.Join(dir, "apis", "pets.yaml") || len(pets.OpenAPI.Operations) != 5 {
		t.Errorf("pets document = %+v", pets.OpenAPI)
	}
	if legacy.OpenAPI == nil || legacy.OpenAPI.File != abs || legacy.OpenAPI.Spec != "Swagger 2.0" {
		t.Errorf("legacy document = %+v", legacy.OpenAPI)
	}
	if bare.OpenAPI != nil {
		t.Errorf("an API without openapi has a document: %+v", bare.OpenAPI)
	}
	// The catalogue it started from is unchanged.
	if p, _ := c.API("pets"); p.OpenAPI != nil {
		t.Error("ReadOpenAPI changed the catalogue it was called on")
	}
	if d, ok := loaded.ScopeDescription("legacy"); !ok || d != "Use the old API" {
		t.Errorf("loaded catalogue lost its scopes: %q, %v", d, ok)
	}

	// An error names the field path, the file and the problem.
	broken, err := New(parseAll(t,
		`{"id": "pets", "name": "Pets", "base_url": "https://x", "scopes": {"pets.read": "Read pets"}}`,
		`{"id": "broken", "name": "Broken", "base_url": "https://x", "scopes": {"b": "B"}, "openapi": "missing-info.yaml"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	_, err = broken.ReadOpenAPI("testdata")
	want := "config: apis[1].openapi: " + filepath.Join("testdata", "missing-info.yaml") + ": invalid OpenAPI 3.0.3 document: invalid info: must be an object"
	if err == nil || err.Error() != want {
		t.Errorf("ReadOpenAPI = %v\nwant %s", err, want)
	}
}

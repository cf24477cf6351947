package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/postern-auth/postern/confjson"
)

// MaxOpenAPIBytes bounds an OpenAPI document: it is read whole, kept in
// memory for download, and parsed at every load.
const MaxOpenAPIBytes = 5 << 20

// Content types of a document as served for download.
const (
	ContentTypeJSON = "application/json"
	ContentTypeYAML = "application/yaml"
)

// Document is an API's OpenAPI 3.x or Swagger 2.0 description, checked.
type Document struct {
	// File is the path it was read from, resolved.
	File string
	// Raw is the file as written, and ContentType its format.
	Raw         []byte
	ContentType string
	// Spec names the format and version: "OpenAPI 3.0.3", "Swagger 2.0".
	Spec string
	// Title and Version are the document's info.title and info.version.
	Title, Version string
	// Operations, sorted by path then method.
	Operations []Operation
}

// Operation is one operation the document describes.
type Operation struct {
	Method      string // upper case: GET, POST, ...
	Path        string // as written: /pets/{petId}
	OperationID string
	Summary     string
	// Scopes the operation asks of an OAuth 2.0 token, when the document
	// says (its security requirements, or the document's default, naming
	// an oauth2 or openIdConnect scheme): every scope named by any of its
	// alternatives, sorted. Nil when the document names none.
	Scopes []string
}

// ReadOpenAPI returns a copy of the catalogue with each API's openapi file
// read and checked. A relative path is taken from configDir, the
// directory of the configuration file (as for saml_providers'
// metadata_file), so the same file works however the server is started.
func (c *Catalog) ReadOpenAPI(configDir string) (*Catalog, error) {
	if c == nil {
		return nil, nil
	}
	apis := make([]*API, 0, len(c.apis))
	for _, a := range c.apis {
		cp := *a
		if a.OpenAPIFile != "" {
			file := a.OpenAPIFile
			if !filepath.IsAbs(file) {
				file = filepath.Join(configDir, file)
			}
			doc, err := ReadDocument(file)
			if err != nil {
				return nil, confjson.Errorf(a.Path+".openapi", "%v", err)
			}
			cp.OpenAPI = doc
		}
		apis = append(apis, &cp)
	}
	return New(apis)
}

// ReadDocument reads and checks the OpenAPI or Swagger document at file.
// Its errors name the file.
func ReadDocument(file string) (*Document, error) {
	raw, err := confjson.ReadFileBounded(file, MaxOpenAPIBytes)
	if err != nil {
		return nil, err
	}
	doc, err := ParseDocument(raw, file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return doc, nil
}

// ParseDocument parses and validates raw, an OpenAPI 3.x or Swagger 2.0
// document in JSON or YAML; file is where it came from, the base of its
// relative $refs (which are refused anyway: see newLoader).
func ParseDocument(raw []byte, file string) (*Document, error) {
	contentType, openapiVersion, swaggerVersion, err := sniff(raw)
	if err != nil {
		return nil, err
	}
	loader := newLoader()
	location := &url.URL{Path: filepath.ToSlash(file)}
	var doc3 *openapi3.T
	var spec string
	switch {
	case openapiVersion != "" && swaggerVersion != "":
		return nil, errors.New(`both "openapi" and "swagger" are set; a document is one or the other`)
	case openapiVersion != "":
		if mm := majorMinor(openapiVersion); mm != "3.0" && mm != "3.1" && mm != "3.2" {
			return nil, fmt.Errorf("openapi %q is not supported: want 3.0.x, 3.1.x or 3.2.x (or swagger 2.0)", openapiVersion)
		}
		doc3, err = loader.LoadFromDataWithPath(raw, location)
		if err != nil {
			return nil, loadError(err)
		}
		spec = "OpenAPI " + openapiVersion
	case swaggerVersion != "":
		if swaggerVersion != "2.0" {
			return nil, fmt.Errorf("swagger %q is not supported: want 2.0", swaggerVersion)
		}
		var doc2 openapi2.T
		if err := openapi2.UnmarshalFromData(raw, &doc2); err != nil {
			return nil, fmt.Errorf("invalid Swagger 2.0 document: %w", err)
		}
		// Converted, the document is checked by the same rules as an
		// OpenAPI 3.0 one; its operations and security keep their meaning.
		doc3, err = openapi2conv.ToV3WithLoader(&doc2, loader, location)
		if err != nil {
			return nil, loadError(err)
		}
		spec = "Swagger 2.0"
	default:
		return nil, errors.New(`neither "openapi" (3.x) nor "swagger" (2.0) is set: not an OpenAPI document`)
	}
	if err := doc3.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("invalid %s document: %w", spec, err)
	}
	d := &Document{File: file, Raw: raw, ContentType: contentType, Spec: spec, Operations: operations(doc3)}
	if doc3.Info != nil {
		d.Title, d.Version = doc3.Info.Title, doc3.Info.Version
	}
	return d, nil
}

// newLoader never follows a $ref out of the document: a reference to
// another file or a URL would make loading the configuration read files
// the operator did not name, or reach out to the network.
func newLoader() *openapi3.Loader {
	l := openapi3.NewLoader()
	l.IsExternalRefsAllowed = false
	return l
}

func loadError(err error) error {
	var ext *openapi3.DisallowedExternalRefError
	if errors.As(err, &ext) {
		return fmt.Errorf("$ref %q points outside the document; external references are not followed: inline or bundle them into one file", ext.Ref)
	}
	return fmt.Errorf("invalid document: %w", err)
}

// sniff tells JSON from YAML (a JSON document starts with '{'; YAML is
// everything else) and reads the version fields, before the library
// guesses: a document's version decides which parser applies.
func sniff(raw []byte) (contentType, openapiVersion, swaggerVersion string, err error) {
	var head struct {
		OpenAPI any `json:"openapi" yaml:"openapi"`
		Swagger any `json:"swagger" yaml:"swagger"`
	}
	body := bytes.TrimLeft(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(body) > 0 && body[0] == '{' {
		contentType = ContentTypeJSON
		if err := json.Unmarshal(body, &head); err != nil {
			return "", "", "", jsonError(raw, len(raw)-len(body), err)
		}
	} else {
		contentType = ContentTypeYAML
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return "", "", "", fmt.Errorf("invalid YAML: %w", err)
		}
	}
	versionOf := func(field string, v any) (string, error) {
		switch v := v.(type) {
		case nil:
			return "", nil
		case string:
			if v == "" {
				return "", fmt.Errorf("%q is empty", field)
			}
			return v, nil
		}
		return "", fmt.Errorf("%q must be a string such as \"3.0.3\" or \"2.0\" (quote it in YAML), got %v", field, v)
	}
	if openapiVersion, err = versionOf("openapi", head.OpenAPI); err != nil {
		return "", "", "", err
	}
	if swaggerVersion, err = versionOf("swagger", head.Swagger); err != nil {
		return "", "", "", err
	}
	return contentType, openapiVersion, swaggerVersion, nil
}

// jsonError places a syntax error by line and column: the file is edited
// by hand.
func jsonError(raw []byte, skipped int, err error) error {
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	// The offset is just past the offending byte.
	off := min(max(skipped+int(syn.Offset)-1, 0), len(raw))
	line := bytes.Count(raw[:off], []byte{'\n'}) + 1
	col := off - (bytes.LastIndexByte(raw[:off], '\n') + 1) + 1
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}

// majorMinor is "3.1" for "3.1.0".
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// operations lists doc's operations by path, then method.
func operations(doc *openapi3.T) []Operation {
	var ops []Operation
	if doc.Paths == nil {
		return nil
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			reqs := doc.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			ops = append(ops, Operation{
				Method: strings.ToUpper(method), Path: path,
				OperationID: op.OperationID, Summary: op.Summary,
				Scopes: oauthScopes(doc, reqs),
			})
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops
}

// oauthScopes gathers the scopes that reqs ask of schemes whose tokens
// come from an authorization server (oauth2, openIdConnect); an API key or
// HTTP basic requirement says nothing about scopes.
func oauthScopes(doc *openapi3.T, reqs openapi3.SecurityRequirements) []string {
	var scopes []string
	for _, req := range reqs {
		for name, names := range req {
			if !isOAuthScheme(doc, name) {
				continue
			}
			for _, s := range names {
				if !slices.Contains(scopes, s) {
					scopes = append(scopes, s)
				}
			}
		}
	}
	slices.Sort(scopes)
	return scopes
}

func isOAuthScheme(doc *openapi3.T, name string) bool {
	if doc.Components == nil {
		return false
	}
	ref, ok := doc.Components.SecuritySchemes[name]
	if !ok || ref == nil || ref.Value == nil {
		return false
	}
	return ref.Value.Type == "oauth2" || ref.Value.Type == "openIdConnect"
}

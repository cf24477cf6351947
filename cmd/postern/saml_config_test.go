package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/samlsp/samltest"
)

func TestParseSAMLProviders(t *testing.T) {
	cfg, err := parseConfig([]byte(`{"saml_providers": [
		{"id": "corp", "display_name": "Corporate SSO", "metadata_file": "corp.xml",
		 "attributes": {"email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}},
		{"id": "partner", "metadata_url": "https://idp.partner.example/metadata", "subject_prefix": "ptn",
		 "allow_idp_initiated": true, "name_id_format": "persistent"},
		{"id": "dev", "metadata_url": "http://127.0.0.1:8080/metadata", "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}
	]}`), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SAMLProviders) != 3 {
		t.Fatalf("%d providers", len(cfg.SAMLProviders))
	}
	corp, partner, dev := cfg.SAMLProviders[0], cfg.SAMLProviders[1], cfg.SAMLProviders[2]
	if corp.ID != "corp" || corp.DisplayName != "Corporate SSO" || corp.SubjectPrefix != "corp" || corp.MetadataFile != "corp.xml" ||
		corp.NameIDFormat != samlsp.NameIDUnspecified || corp.AllowIDPInitiated || corp.Attributes["email"] == "" {
		t.Errorf("corp = %+v", corp)
	}
	if partner.DisplayName != "partner" || partner.SubjectPrefix != "ptn" || partner.MetadataURL == "" || !partner.AllowIDPInitiated || partner.NameIDFormat != samlsp.NameIDPersistent {
		t.Errorf("partner = %+v", partner)
	}
	if dev.NameIDFormat != samlsp.NameIDEmail {
		t.Errorf("dev = %+v", dev)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "saml_providers[1] (partner) accepts IdP-initiated logins") {
		t.Errorf("warnings = %q", cfg.Warnings)
	}
}

func TestParseSAMLProviderErrors(t *testing.T) {
	one := func(p string) string { return `{"saml_providers": [` + p + `]}` }
	const md = `"metadata_url": "https://idp.example.com/md"`
	tests := []struct{ name, config, want string }{
		{"no id", one(`{` + md + `}`), `config: saml_providers[0].id: is required`},
		{"id not URL-safe", one(`{"id": "corp/x", ` + md + `}`), `config: saml_providers[0].id: "corp/x" must be 1-64 characters of A-Z a-z 0-9 _ - (it appears in URLs)`},
		{"unknown field", one(`{"id": "corp", "name": "x", ` + md + `}`), `config: saml_providers[0]: unknown field "name"`},
		{"no metadata", one(`{"id": "corp"}`), `config: saml_providers[0]: set metadata_file or metadata_url`},
		{"both metadata", one(`{"id": "corp", "metadata_file": "x.xml", ` + md + `}`), `config: saml_providers[0]: set metadata_file or metadata_url, not both`},
		{"http metadata url", one(`{"id": "corp", "metadata_url": "http://idp.example.com/md"}`), `config: saml_providers[0].metadata_url: "http://idp.example.com/md": plain http is only allowed for loopback addresses; use https`},
		{"relative metadata url", one(`{"id": "corp", "metadata_url": "/md"}`), `config: saml_providers[0].metadata_url: "/md" is not an absolute URL`},
		{"prefix with colon", one(`{"id": "corp", "subject_prefix": "a:b", ` + md + `}`), `config: saml_providers[0].subject_prefix: "a:b" must be 1-64 characters of A-Z a-z 0-9 _ - (no colon: subjects are prefix:nameid)`},
		{"transient", one(`{"id": "corp", "name_id_format": "transient", ` + md + `}`), `config: saml_providers[0].name_id_format: a transient NameID changes at every login, so it cannot name a user; use persistent`},
		{"unknown format", one(`{"id": "corp", "name_id_format": "x509", ` + md + `}`), `config: saml_providers[0].name_id_format: unknown format "x509" (want unspecified, persistent or emailAddress)`},
		{"reserved claim", one(`{"id": "corp", "attributes": {"sub": "uid"}, ` + md + `}`), `config: saml_providers[0].attributes.sub: is reserved by the token format`},
		{"empty attribute", one(`{"id": "corp", "attributes": {"email": ""}, ` + md + `}`), `config: saml_providers[0].attributes.email: names no SAML attribute`},
		{"attributes not strings", one(`{"id": "corp", "attributes": {"email": 1}, ` + md + `}`), `config: saml_providers[0].attributes: expected string, got number`},
		{"duplicate id", one(`{"id": "corp", ` + md + `}, {"id": "corp", "subject_prefix": "c2", ` + md + `}`), `config: saml_providers[1].id: "corp" is already used by saml_providers[0]`},
		{"duplicate prefix", one(`{"id": "corp", ` + md + `}, {"id": "corp2", "subject_prefix": "corp", ` + md + `}`), `config: saml_providers[1].subject_prefix: "corp" is already used by saml_providers[0]: its users would be the same accounts`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.config), mapEnv(nil))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

// TestLoadConfigSAMLMetadataFile: a relative metadata_file is read from
// the configuration file's directory, whatever the working directory.
func TestLoadConfigSAMLMetadataFile(t *testing.T) {
	idp, err := samltest.NewIdP("https://idp.example.com/metadata", "https://idp.example.com/sso")
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "idp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "idp", "corp.xml"), md, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := loadConfig(write("ok.json", `{"saml_providers": [{"id": "corp", "metadata_file": "idp/corp.xml"}]}`), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.SAMLProviders[0]; p.MetadataFile != filepath.Join(dir, "idp", "corp.xml") || string(p.Metadata) != string(md) {
		t.Errorf("provider = %s, %d bytes", p.MetadataFile, len(p.Metadata))
	}

	_, err = loadConfig(write("missing.json", `{"saml_providers": [{"id": "corp", "metadata_file": "nope.xml"}]}`), mapEnv(nil))
	var ce *configError
	if !errors.As(err, &ce) || ce.Path != "saml_providers[0].metadata_file" || !strings.Contains(err.Error(), filepath.Join(dir, "nope.xml")) {
		t.Errorf("missing metadata file: %v", err)
	}
	write("sp.xml", `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`)
	_, err = loadConfig(write("notidp.json", `{"saml_providers": [{"id": "corp", "metadata_file": "sp.xml"}]}`), mapEnv(nil))
	if err == nil || !strings.HasPrefix(err.Error(), "config: saml_providers[0].metadata_file: ") || !strings.Contains(err.Error(), "no IDPSSODescriptor") {
		t.Errorf("SP metadata as IdP metadata: %v", err)
	}
}

func TestSAMLExampleConfigs(t *testing.T) {
	for _, path := range []string{"../../examples/saml/postern.json", "../../examples/saml/local.json"} {
		cfg, err := loadConfig(path, mapEnv(nil))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(cfg.SAMLProviders) != 1 || cfg.SAMLProviders[0].MetadataURL == "" || cfg.SAMLProviders[0].Attributes["email"] == "" {
			t.Errorf("%s: providers %+v", path, cfg.SAMLProviders)
		}
	}
}

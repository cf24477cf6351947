package samlsp

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/identity"
)

// ProviderFileConfig is one saml_providers entry as written in the server's file.
type ProviderFileConfig struct {
	ID                string            `json:"id"`
	DisplayName       string            `json:"display_name"`
	MetadataFile      string            `json:"metadata_file"`
	MetadataURL       string            `json:"metadata_url"`
	Attributes        map[string]string `json:"attributes"`
	SubjectPrefix     string            `json:"subject_prefix"`
	AllowIDPInitiated bool              `json:"allow_idp_initiated"`
	NameIDFormat      string            `json:"name_id_format"`
}

// FileProvider is a validated saml_providers entry. Exactly one of
// MetadataFile and MetadataURL is set. The command resolves a relative
// MetadataFile against the directory of the configuration file (not the
// working directory, so the same file works however the server is started)
// and reads it into Metadata; the URL is fetched when the server starts.
type FileProvider struct {
	ProviderConfig
	MetadataFile string
	MetadataURL  string
	Metadata     []byte
	Path         string // "saml_providers[i]", for errors found after parsing
}

var (
	// Provider IDs and subject prefixes appear in URLs (/saml/{id}/acs)
	// and in subjects (prefix:nameid); no colon, so prefixes cannot nest.
	samlIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

	nameIDFormats = map[string]string{
		"":             NameIDUnspecified,
		"unspecified":  NameIDUnspecified,
		"persistent":   NameIDPersistent,
		"emailAddress": NameIDEmail,
	}
)

// ParseProviderConfig decodes and validates the saml_providers entry raw
// at path.
func ParseProviderConfig(path string, raw json.RawMessage) (FileProvider, []string, error) {
	var sc ProviderFileConfig
	if err := confjson.Decode(raw, &sc, path); err != nil {
		return FileProvider{}, nil, err
	}
	return sc.Validate(path)
}

// Validate checks the entry at path; warnings name risky choices.
func (sc ProviderFileConfig) Validate(path string) (FileProvider, []string, error) {
	p := FileProvider{Path: path}
	if sc.ID == "" {
		return p, nil, confjson.Errorf(path+".id", "is required")
	}
	if !samlIDPattern.MatchString(sc.ID) {
		return p, nil, confjson.Errorf(path+".id", "%q must be 1-64 characters of A-Z a-z 0-9 _ - (it appears in URLs)", sc.ID)
	}
	p.ID = sc.ID
	p.DisplayName = sc.DisplayName
	if p.DisplayName == "" {
		p.DisplayName = sc.ID
	}
	if len(p.DisplayName) > 100 {
		return p, nil, confjson.Errorf(path+".display_name", "is longer than 100 characters")
	}
	p.SubjectPrefix = sc.SubjectPrefix
	if p.SubjectPrefix == "" {
		p.SubjectPrefix = sc.ID
	}
	if !samlIDPattern.MatchString(p.SubjectPrefix) {
		return p, nil, confjson.Errorf(path+".subject_prefix", "%q must be 1-64 characters of A-Z a-z 0-9 _ - (no colon: subjects are prefix:nameid)", sc.SubjectPrefix)
	}
	switch {
	case sc.MetadataFile == "" && sc.MetadataURL == "":
		return p, nil, confjson.Errorf(path, "set metadata_file or metadata_url")
	case sc.MetadataFile != "" && sc.MetadataURL != "":
		return p, nil, confjson.Errorf(path, "set metadata_file or metadata_url, not both")
	case sc.MetadataURL != "":
		// Whoever can alter the metadata in transit chooses which keys
		// Postern trusts to sign logins.
		if err := confjson.HTTPSURL(sc.MetadataURL); err != nil {
			return p, nil, confjson.Errorf(path+".metadata_url", "%v", err)
		}
	}
	p.MetadataFile, p.MetadataURL = sc.MetadataFile, sc.MetadataURL

	format, ok := nameIDFormats[sc.NameIDFormat]
	if !ok {
		for _, f := range nameIDFormats {
			if sc.NameIDFormat == f {
				format, ok = f, true
			}
		}
	}
	switch {
	case sc.NameIDFormat == "transient" || sc.NameIDFormat == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient":
		return p, nil, confjson.Errorf(path+".name_id_format", "a transient NameID changes at every login, so it cannot name a user; use persistent")
	case !ok:
		return p, nil, confjson.Errorf(path+".name_id_format", "unknown format %q (want unspecified, persistent or emailAddress)", sc.NameIDFormat)
	}
	p.NameIDFormat = format

	claims := make([]string, 0, len(sc.Attributes))
	for c := range sc.Attributes {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		switch {
		case c == "":
			return p, nil, confjson.Errorf(path+".attributes", "a claim name is empty")
		case identity.ReservedClaim(c):
			return p, nil, confjson.Errorf(path+".attributes."+c, "is reserved by the token format")
		case sc.Attributes[c] == "":
			return p, nil, confjson.Errorf(path+".attributes."+c, "names no SAML attribute")
		}
	}
	p.Attributes = sc.Attributes
	p.AllowIDPInitiated = sc.AllowIDPInitiated
	var warnings []string
	if sc.AllowIDPInitiated {
		warnings = append(warnings, fmt.Sprintf("%s (%s) accepts IdP-initiated logins: an unsolicited response cannot be tied to the browser that receives it, so another site can sign a user in as someone else (login CSRF)", path, sc.ID))
	}
	return p, warnings, nil
}

// CheckProviders refuses two providers with one ID or one subject prefix:
// the second would sign in as the first one's users.
func CheckProviders(ps []FileProvider) error {
	ids, prefixes := map[string]string{}, map[string]string{}
	for _, p := range ps {
		if other, dup := ids[p.ID]; dup {
			return confjson.Errorf(p.Path+".id", "%q is already used by %s", p.ID, other)
		}
		ids[p.ID] = p.Path
		if other, dup := prefixes[p.SubjectPrefix]; dup {
			return confjson.Errorf(p.Path+".subject_prefix", "%q is already used by %s: its users would be the same accounts", p.SubjectPrefix, other)
		}
		prefixes[p.SubjectPrefix] = p.Path
	}
	return nil
}

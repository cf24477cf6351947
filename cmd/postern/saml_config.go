package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/postern-auth/postern/samlsp"
)

// samlProviderConfig is one saml_providers entry as written in the file.
type samlProviderConfig struct {
	ID                string            `json:"id"`
	DisplayName       string            `json:"display_name"`
	MetadataFile      string            `json:"metadata_file"`
	MetadataURL       string            `json:"metadata_url"`
	Attributes        map[string]string `json:"attributes"`
	SubjectPrefix     string            `json:"subject_prefix"`
	AllowIDPInitiated bool              `json:"allow_idp_initiated"`
	NameIDFormat      string            `json:"name_id_format"`
}

// SAMLProvider is a validated saml_providers entry. Exactly one of
// MetadataFile and MetadataURL is set. loadConfig resolves a relative
// MetadataFile against the directory of the configuration file (not the
// working directory, so the same file works however the server is started)
// and reads it into Metadata; the URL is fetched when the server starts.
type SAMLProvider struct {
	samlsp.ProviderConfig
	MetadataFile string
	MetadataURL  string
	Metadata     []byte
	path         string // "saml_providers[i]", for errors found after parsing
}

var (
	// Provider IDs and subject prefixes appear in URLs (/saml/{id}/acs)
	// and in subjects (prefix:nameid); no colon, so prefixes cannot nest.
	samlIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

	nameIDFormats = map[string]string{
		"":             samlsp.NameIDUnspecified,
		"unspecified":  samlsp.NameIDUnspecified,
		"persistent":   samlsp.NameIDPersistent,
		"emailAddress": samlsp.NameIDEmail,
	}
)

func (sc samlProviderConfig) validate(path string) (SAMLProvider, []string, error) {
	p := SAMLProvider{path: path}
	if sc.ID == "" {
		return p, nil, errAt(path+".id", "is required")
	}
	if !samlIDPattern.MatchString(sc.ID) {
		return p, nil, errAt(path+".id", "%q must be 1-64 characters of A-Z a-z 0-9 _ - (it appears in URLs)", sc.ID)
	}
	p.ID = sc.ID
	p.DisplayName = sc.DisplayName
	if p.DisplayName == "" {
		p.DisplayName = sc.ID
	}
	if len(p.DisplayName) > 100 {
		return p, nil, errAt(path+".display_name", "is longer than 100 characters")
	}
	p.SubjectPrefix = sc.SubjectPrefix
	if p.SubjectPrefix == "" {
		p.SubjectPrefix = sc.ID
	}
	if !samlIDPattern.MatchString(p.SubjectPrefix) {
		return p, nil, errAt(path+".subject_prefix", "%q must be 1-64 characters of A-Z a-z 0-9 _ - (no colon: subjects are prefix:nameid)", sc.SubjectPrefix)
	}
	switch {
	case sc.MetadataFile == "" && sc.MetadataURL == "":
		return p, nil, errAt(path, "set metadata_file or metadata_url")
	case sc.MetadataFile != "" && sc.MetadataURL != "":
		return p, nil, errAt(path, "set metadata_file or metadata_url, not both")
	case sc.MetadataURL != "":
		if err := validateMetadataURL(sc.MetadataURL); err != nil {
			return p, nil, errAt(path+".metadata_url", "%v", err)
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
		return p, nil, errAt(path+".name_id_format", "a transient NameID changes at every login, so it cannot name a user; use persistent")
	case !ok:
		return p, nil, errAt(path+".name_id_format", "unknown format %q (want unspecified, persistent or emailAddress)", sc.NameIDFormat)
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
			return p, nil, errAt(path+".attributes", "a claim name is empty")
		case reservedClaims[c]:
			return p, nil, errAt(path+".attributes."+c, "is reserved by the token format")
		case sc.Attributes[c] == "":
			return p, nil, errAt(path+".attributes."+c, "names no SAML attribute")
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

// validateMetadataURL wants https, or http on a loopback address only:
// whoever can alter the metadata in transit chooses which keys Postern
// trusts to sign logins.
func validateMetadataURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q must not contain user info or a fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is only allowed for loopback addresses; use https", s)
	}
	return fmt.Errorf("%q: want an https URL", s)
}

// checkSAMLProviders refuses two providers with one ID or one subject
// prefix: the second would sign in as the first one's users.
func checkSAMLProviders(ps []SAMLProvider) error {
	ids, prefixes := map[string]string{}, map[string]string{}
	for _, p := range ps {
		if other, dup := ids[p.ID]; dup {
			return errAt(p.path+".id", "%q is already used by %s", p.ID, other)
		}
		ids[p.ID] = p.path
		if other, dup := prefixes[p.SubjectPrefix]; dup {
			return errAt(p.path+".subject_prefix", "%q is already used by %s: its users would be the same accounts", p.SubjectPrefix, other)
		}
		prefixes[p.SubjectPrefix] = p.path
	}
	return nil
}

// readSAMLMetadata reads and checks each metadata_file. A relative path is
// taken from configDir, the directory of the configuration file.
func readSAMLMetadata(ps []SAMLProvider, configDir string) error {
	for i := range ps {
		p := &ps[i]
		if p.MetadataFile == "" {
			continue
		}
		if !filepath.IsAbs(p.MetadataFile) {
			p.MetadataFile = filepath.Join(configDir, p.MetadataFile)
		}
		raw, err := readBounded(p.MetadataFile, samlsp.MaxMetadataBytes)
		if err != nil {
			return errAt(p.path+".metadata_file", "%v", err)
		}
		if _, err := samlsp.ParseIDPMetadata(raw); err != nil {
			return errAt(p.path+".metadata_file", "%s: %v", p.MetadataFile, err)
		}
		p.Metadata = raw
	}
	return nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return raw, nil
}

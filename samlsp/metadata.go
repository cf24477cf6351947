package samlsp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crewjam/saml"
)

// Bounds on fetching IdP metadata.
const (
	MaxMetadataBytes       = 1 << 20
	MetadataTimeout        = 10 * time.Second
	DefaultMetadataRefresh = 12 * time.Hour
	// DefaultMetadataRetry is how soon a failed fetch is tried again.
	DefaultMetadataRetry = 5 * time.Minute
)

// ParseIDPMetadata reads the metadata of one identity provider: an
// EntityDescriptor, or an EntitiesDescriptor holding exactly one entity
// with an IDPSSODescriptor. It must offer single sign-on over the
// HTTP-Redirect binding and at least one signing certificate.
func ParseIDPMetadata(raw []byte) (*saml.EntityDescriptor, error) {
	if len(raw) > MaxMetadataBytes {
		return nil, fmt.Errorf("metadata is larger than %d bytes", MaxMetadataBytes)
	}
	root, err := rootElement(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata is not XML: %w", err)
	}
	var ed *saml.EntityDescriptor
	switch root {
	case "EntityDescriptor":
		ed = &saml.EntityDescriptor{}
		if err := xml.Unmarshal(raw, ed); err != nil {
			return nil, fmt.Errorf("decode metadata: %w", err)
		}
	case "EntitiesDescriptor":
		var all saml.EntitiesDescriptor
		if err := xml.Unmarshal(raw, &all); err != nil {
			return nil, fmt.Errorf("decode metadata: %w", err)
		}
		idps := idpEntities(&all, nil)
		if len(idps) != 1 {
			return nil, fmt.Errorf("metadata holds %d identity providers; give the metadata of exactly one", len(idps))
		}
		ed = idps[0]
	default:
		return nil, fmt.Errorf("metadata root is <%s>, want <EntityDescriptor>", root)
	}
	if ed.EntityID == "" {
		return nil, errors.New("metadata has no entityID")
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, fmt.Errorf("metadata of %s has no IDPSSODescriptor: is it an identity provider's?", ed.EntityID)
	}
	var sso bool
	var certs int
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			sso = sso || (s.Binding == saml.HTTPRedirectBinding && s.Location != "")
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					return nil, fmt.Errorf("metadata of %s: signing certificate is not base64", ed.EntityID)
				}
				if _, err := x509.ParseCertificate(der); err != nil {
					return nil, fmt.Errorf("metadata of %s: signing certificate: %w", ed.EntityID, err)
				}
				certs++
			}
		}
	}
	if !sso {
		return nil, fmt.Errorf("metadata of %s has no SingleSignOnService with the HTTP-Redirect binding", ed.EntityID)
	}
	if certs == 0 {
		return nil, fmt.Errorf("metadata of %s has no signing certificate", ed.EntityID)
	}
	return ed, nil
}

func rootElement(raw []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		if el, ok := tok.(xml.StartElement); ok {
			return el.Name.Local, nil
		}
	}
}

func idpEntities(all *saml.EntitiesDescriptor, out []*saml.EntityDescriptor) []*saml.EntityDescriptor {
	for i := range all.EntityDescriptors {
		if len(all.EntityDescriptors[i].IDPSSODescriptors) > 0 {
			out = append(out, &all.EntityDescriptors[i])
		}
	}
	for i := range all.EntitiesDescriptors {
		out = idpEntities(&all.EntitiesDescriptors[i], out)
	}
	return out
}

// FetchMetadata GETs metadata from url, giving up after
// MetadataTimeout and refusing more than MaxMetadataBytes.
func FetchMetadata(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, MetadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata from %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch metadata from %s: %w", url, err)
	}
	if len(body) > MaxMetadataBytes {
		return nil, fmt.Errorf("fetch metadata from %s: larger than %d bytes", url, MaxMetadataBytes)
	}
	return body, nil
}

// MetadataClient is an HTTP client for metadata: bounded in time, and it
// follows a redirect only to https, or from http to http.
func MetadataClient() *http.Client {
	return &http.Client{
		Timeout: MetadataTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
				return fmt.Errorf("refusing a redirect from https to %s", req.URL.Scheme)
			}
			return nil
		},
	}
}

// MetadataSource keeps a provider's IdP metadata current from a URL. The
// last good copy is kept in CachePath (if set), so a restart during an
// outage of the IdP's metadata endpoint still has metadata to work with.
type MetadataSource struct {
	Provider  *Provider
	URL       string
	CachePath string
	Client    *http.Client
	Every     time.Duration // zero means DefaultMetadataRefresh
	Retry     time.Duration // zero means DefaultMetadataRetry
	Log       *slog.Logger
}

// Load fetches the metadata once. If that fails it falls back to the cached
// copy; the error is returned only when the provider has no metadata.
func (m *MetadataSource) Load(ctx context.Context) error {
	err := m.fetch(ctx)
	if err == nil {
		return nil
	}
	m.log().Error("SAML metadata fetch failed", "provider", m.Provider.ID(), "url", m.URL, "error", err)
	if m.CachePath != "" {
		if raw, cerr := os.ReadFile(m.CachePath); cerr == nil {
			if cerr = m.Provider.SetMetadata(raw); cerr == nil {
				m.log().Warn("SAML provider uses its last good metadata until a fetch succeeds", "provider", m.Provider.ID(), "cache", m.CachePath)
				return nil
			}
		}
	}
	return err
}

// Run refreshes the metadata until ctx ends: every Every after a success,
// every Retry after a failure (the previous metadata staying in use).
func (m *MetadataSource) Run(ctx context.Context) {
	every, retry := m.Every, m.Retry
	if every <= 0 {
		every = DefaultMetadataRefresh
	}
	if retry <= 0 {
		retry = DefaultMetadataRetry
	}
	wait := every
	if !m.Provider.Ready() {
		wait = retry
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := m.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log().Error("SAML metadata refresh failed; keeping the last good copy", "provider", m.Provider.ID(), "url", m.URL, "error", err)
			wait = retry
			continue
		}
		wait = every
	}
}

func (m *MetadataSource) fetch(ctx context.Context) error {
	client := m.Client
	if client == nil {
		client = MetadataClient()
	}
	raw, err := FetchMetadata(ctx, client, m.URL)
	if err != nil {
		return err
	}
	if err := m.Provider.SetMetadata(raw); err != nil {
		return err
	}
	m.log().Info("SAML metadata loaded", "provider", m.Provider.ID(), "url", m.URL)
	if m.CachePath != "" {
		if err := writeFileAtomic(m.CachePath, raw); err != nil {
			m.log().Warn("cannot cache SAML metadata", "provider", m.Provider.ID(), "error", err)
		}
	}
	return nil
}

func (m *MetadataSource) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

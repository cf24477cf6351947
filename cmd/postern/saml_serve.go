package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/storage"
)

// startSAML builds the configured SAML providers for issuer: each with its
// key pair from the store (created on first start), and its IdP metadata
// from the file read with the configuration or fetched from its URL now.
// A URL is refreshed in the background until ctx ends (stop waits for
// that); a failed first fetch falls back to the copy cached in the data
// directory, or leaves the provider unavailable (its login page says so)
// until a retry succeeds, so that an IdP outage never keeps local users
// from signing in.
func startSAML(ctx context.Context, cfg *Config, issuer string, store storage.Store, secret keys.Secret, log *slog.Logger) (providers []*samlsp.Provider, stop func(), err error) {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() { cancel(); wg.Wait() }
	for _, pc := range cfg.SAMLProviders {
		key, cert, err := keys.SAMLKeyPair(ctx, store, secret, pc.ID)
		if err != nil {
			stop()
			return nil, nil, err
		}
		p, err := samlsp.NewProvider(pc.ProviderConfig, samlsp.Options{Issuer: issuer, Key: key, Certificate: cert, Replay: store})
		if err != nil {
			stop()
			return nil, nil, err
		}
		if pc.MetadataURL == "" {
			if err := p.SetMetadata(pc.Metadata); err != nil {
				stop()
				return nil, nil, fmt.Errorf("%s: %w", pc.MetadataFile, err)
			}
		} else {
			src := &samlsp.MetadataSource{
				Provider:  p,
				URL:       pc.MetadataURL,
				CachePath: filepath.Join(cfg.DataDir, "saml", pc.ID+"-idp-metadata.xml"),
				Log:       log,
			}
			if err := src.Load(ctx); err != nil {
				log.Error("SAML provider unavailable until its metadata can be fetched", "provider", pc.ID, "error", err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); src.Run(rctx) }()
		}
		log.Info("SAML provider", "provider", pc.ID, "entity_id", p.EntityID(), "acs", p.ACSURL(), "ready", p.Ready())
		providers = append(providers, p)
	}
	return providers, stop, nil
}

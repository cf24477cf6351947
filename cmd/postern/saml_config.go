package main

import (
	"path/filepath"

	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/samlsp"
)

// readSAMLMetadata reads and checks each metadata_file. A relative path is
// taken from configDir, the directory of the configuration file.
func readSAMLMetadata(ps []samlsp.FileProvider, configDir string) error {
	for i := range ps {
		p := &ps[i]
		if p.MetadataFile == "" {
			continue
		}
		if !filepath.IsAbs(p.MetadataFile) {
			p.MetadataFile = filepath.Join(configDir, p.MetadataFile)
		}
		raw, err := confjson.ReadFileBounded(p.MetadataFile, samlsp.MaxMetadataBytes)
		if err != nil {
			return confjson.Errorf(p.Path+".metadata_file", "%v", err)
		}
		if _, err := samlsp.ParseIDPMetadata(raw); err != nil {
			return confjson.Errorf(p.Path+".metadata_file", "%s: %v", p.MetadataFile, err)
		}
		p.Metadata = raw
	}
	return nil
}

package main

import (
	"fmt"
	"io"
	"os"
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
		raw, err := readBounded(p.MetadataFile, samlsp.MaxMetadataBytes)
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

package confjson

import (
	"fmt"
	"io"
	"os"
)

// ReadFileBounded reads a file the configuration names (SAML metadata, an
// OpenAPI document), refusing one larger than limit bytes before holding
// more than that in memory: a path pointing at a huge or endless file is a
// configuration error, not an out-of-memory crash.
func ReadFileBounded(path string, limit int64) ([]byte, error) {
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

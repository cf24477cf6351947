package gateway

import (
	"os"
	"testing"
)

// FuzzParseConfig feeds the gateway's configuration parser: a bad file is
// an error naming what is wrong, never a panic.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../examples/gateway/gateway.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"listen": "127.0.0.1:8080", "issuer": "http://127.0.0.1:4444", "routes": [{"prefix": "/a", "upstream": "http://127.0.0.1:9000"}]}`))
	f.Add([]byte(`{"listen": "${LISTEN}", "trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8"], "tiers": {"gold": {"rate": -1}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = ParseConfig(raw, func(string) string { return "127.0.0.1:1" })
	})
}

package confjson

import (
	"testing"
	"time"
)

// FuzzDecode runs the helpers every configuration file goes through:
// ${ENV} expansion, strict decoding, durations and the syntax checks.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"issuer": "${ISSUER}", "ttl": "1h", "n": 3, "list": ["a"]}`))
	f.Add([]byte(`{"issuer": "$${literal}", "extra": true}`))
	f.Add([]byte(`{"ttl": "-5m"} trailing`))
	f.Add([]byte(`{"issuer": "http://127.0.0.1:4444/x?y#z", "ttl": "${UNSET}"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		getenv := func(name string) string {
			if name == "ISSUER" {
				return "https://auth.example.com"
			}
			return ""
		}
		expanded, err := ExpandEnv(raw, getenv)
		if err != nil {
			return
		}
		var v struct {
			Issuer string   `json:"issuer"`
			TTL    string   `json:"ttl"`
			N      int      `json:"n"`
			List   []string `json:"list"`
		}
		if err := Decode(expanded, &v, "cfg"); err != nil {
			return
		}
		_, _ = ParseDuration("cfg.ttl", v.TTL, time.Hour, time.Second)
		_, _ = Issuer(v.Issuer)
		_ = HostPort(v.Issuer)
		_ = ClientID(v.Issuer)
		_ = ScopeToken(v.Issuer)
	})
}

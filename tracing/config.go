// Package tracing owns OpenTelemetry for both commands: the `tracing`
// block of the server's and the gateway's configuration, the tracer
// provider that exports spans over OTLP/HTTP, the W3C trace-context
// propagator and the log handler that stamps log lines with the trace ID.
// It knows nothing of OAuth, the store or the proxy: the parts that make
// spans take a trace.TracerProvider and decide what to record themselves.
package tracing

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"

	"github.com/postern-auth/postern/confjson"
)

// Default service names, one per command.
const (
	DefaultServerName  = "postern"
	DefaultGatewayName = "postern-gateway"
)

// Config is a validated tracing block. A nil *Config means tracing is off.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP base URL; spans are posted to
	// Endpoint + "/v1/traces", as OTEL_EXPORTER_OTLP_ENDPOINT would be.
	Endpoint string
	// SampleRatio is the share of new traces recorded, in [0,1]; a caller's
	// traceparent decides for the traces it starts.
	SampleRatio float64
	ServiceName string
}

// FileConfig is the tracing block as written in either configuration file.
type FileConfig struct {
	OTLPEndpoint string   `json:"otlp_endpoint"`
	SampleRatio  *float64 `json:"sample_ratio"` // a pointer: 0 differs from absent (1)
	ServiceName  string   `json:"service_name"`
}

// ParseConfig reads the tracing block raw at path; absent (or null) gives
// nil, tracing off. defaultName is the service name when none is given.
func ParseConfig(path string, raw json.RawMessage, defaultName string) (*Config, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var f FileConfig
	if err := confjson.Decode(raw, &f, path); err != nil {
		return nil, err
	}
	return f.Validate(path, defaultName)
}

// Validate checks the block and fills in the defaults.
func (f FileConfig) Validate(path, defaultName string) (*Config, error) {
	c := &Config{Endpoint: f.OTLPEndpoint, SampleRatio: 1, ServiceName: f.ServiceName}
	if c.Endpoint == "" {
		return nil, confjson.Errorf(path+".otlp_endpoint", "required when tracing is configured (e.g. \"http://127.0.0.1:4318\")")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, confjson.Errorf(path+".otlp_endpoint", "expected an http:// or https:// URL, got %q", c.Endpoint)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, confjson.Errorf(path+".otlp_endpoint", "expected a base URL without credentials, query or fragment (set headers through OTEL_EXPORTER_OTLP_HEADERS)")
	}
	if f.SampleRatio != nil {
		r := *f.SampleRatio
		if math.IsNaN(r) || r < 0 || r > 1 {
			return nil, confjson.Errorf(path+".sample_ratio", "must lie in [0, 1], got %v", r)
		}
		c.SampleRatio = r
	}
	if c.ServiceName == "" {
		c.ServiceName = defaultName
	}
	return c, nil
}

package acmecert

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	expiryDesc = prometheus.NewDesc("postern_acme_certificate_expiry_timestamp_seconds",
		"When the certificate served for the domain expires (Unix seconds); absent until one is served.", []string{"domain"}, nil)
	failureDesc = prometheus.NewDesc("postern_acme_order_failures_total",
		"Failed attempts to obtain the domain's certificate.", []string{"domain"}, nil)
)

// Describe implements prometheus.Collector, so the command registers the
// manager in its registry.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- failureDesc
}

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.cfg.Domains {
		if na, ok := m.notAfter[d]; ok {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(na.Unix()), d)
		}
		ch <- prometheus.MustNewConstMetric(failureDesc, prometheus.CounterValue, float64(m.failures[d]), d)
	}
}

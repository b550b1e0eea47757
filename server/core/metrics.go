package core

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus series; the HTTP adapter keeps its
// own (requests and latency by route).
type metrics struct {
	tokens      *prometheus.CounterVec
	detections  *prometheus.CounterVec
	rateLimited prometheus.Counter
	sweeps      prometheus.Counter
	swept       *prometheus.CounterVec
	undecodable prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugintoken_tokens_total", Help: "Token pairs issued (exchange) and refreshed (rotation), and tokens revoked.",
		}, []string{"event"}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugintoken_theft_detections_total", Help: "Replayed auth codes and reused refresh tokens; each revoked a token family.",
		}, []string{"kind"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plugintoken_rate_limited_total", Help: "Attempts refused with 429 after too many failed secrets, codes or tokens.",
		}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plugintoken_sweeps_total", Help: "Runs of the expiry sweeper.",
		}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugintoken_swept_total", Help: "Expired records deleted by the sweeper.",
		}, []string{"kind"}),
		undecodable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plugintoken_undecodable_records", Help: "Records the last sweep could not decode and left in place (see the log).",
		}),
	}
	// Pre-create the series dashboards look for, so they start at 0.
	for _, e := range []string{"issued", "refreshed", "revoked"} {
		m.tokens.WithLabelValues(e)
	}
	for _, k := range []string{"auth_code_replay", "refresh_token_reuse"} {
		m.detections.WithLabelValues(k)
	}
	return m
}

// Collectors are the service's Prometheus metrics, for the host to
// register (package server registers them with its own).
func (s *Service) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.tokens, m.detections, m.rateLimited, m.sweeps, m.swept, m.undecodable}
}

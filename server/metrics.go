package server

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series the server keeps. Routes are labelled
// by their template (/api/plugin/:pluginId/token), never by a raw path, so
// the series stay few.
type metrics struct {
	// gatherer is the registry when it can be read (MetricsHandler).
	gatherer prometheus.Gatherer
	// routes holds the route templates Mount registered (a map[string]bool
	// replaced whole on each Mount): the only values of the route label
	// besides "unmatched".
	routes      atomic.Pointer[map[string]bool]
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	tokens      *prometheus.CounterVec
	detections  *prometheus.CounterVec
	rateLimited prometheus.Counter
	sweeps      prometheus.Counter
	swept       *prometheus.CounterVec
	undecodable prometheus.Gauge
}

// sizer is implemented by stores that can tell their size on disk.
type sizer interface{ Size() int64 }

func newMetrics(reg prometheus.Registerer, st Store) (*metrics, error) {
	m := &metrics{}
	if reg == nil {
		own := prometheus.NewRegistry()
		if err := own.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := own.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
		reg = own
	}
	m.gatherer, _ = reg.(prometheus.Gatherer)
	m.routes.Store(&map[string]bool{})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_http_requests_total", Help: "API requests by route template, method and status.",
	}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "plugintoken_http_request_duration_seconds", Help: "API request latency by route template and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"route", "method"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_tokens_total", Help: "Token pairs issued (exchange) and refreshed (rotation), and tokens revoked.",
	}, []string{"event"})
	m.detections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_theft_detections_total", Help: "Replayed auth codes and reused refresh tokens; each revoked a token family.",
	}, []string{"kind"})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plugintoken_rate_limited_total", Help: "Attempts refused with 429 after too many failed secrets, codes or tokens.",
	})
	m.sweeps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plugintoken_sweeps_total", Help: "Runs of the expiry sweeper.",
	})
	m.swept = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_swept_total", Help: "Expired records deleted by the sweeper.",
	}, []string{"kind"})
	m.undecodable = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plugintoken_undecodable_records", Help: "Records the last sweep could not decode and left in place (see the log).",
	})
	all := []prometheus.Collector{m.requests, m.latency, m.tokens, m.detections, m.rateLimited, m.sweeps, m.swept, m.undecodable}
	if sz, ok := st.(sizer); ok {
		all = append(all, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plugintoken_database_size_bytes", Help: "Size of the database file.",
		}, func() float64 { return float64(sz.Size()) }))
	}
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, done := range all[:i] { // leave the registry as it was
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("server: register metrics: %w (is another Server, or a metric of the same name, in this registry?)", err)
		}
	}
	// Pre-create the series dashboards look for, so they start at 0.
	for _, e := range []string{"issued", "refreshed", "revoked"} {
		m.tokens.WithLabelValues(e)
	}
	for _, k := range []string{"auth_code_replay", "refresh_token_reuse"} {
		m.detections.WithLabelValues(k)
	}
	return m, nil
}

// measure is the middleware that counts and times API requests.
func (m *metrics) measure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route, method := m.route(c), methodLabel(c.Request().Method)
		m.requests.WithLabelValues(route, method, statusLabel(c.Response().Status)).Inc()
		m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		return err
	}
}

// Every label takes its values from a closed set, so that no request (an
// unknown route, a made-up method, an odd status) can add series: an
// unauthenticated /metrics must not be blown up by what clients send.

// route is the request's route template when it is one of plugintoken's
// routes, else "unmatched".
func (m *metrics) route(c echo.Context) string {
	if p := c.Path(); (*m.routes.Load())[p] {
		return p
	}
	return "unmatched"
}

// methodLabel is the method when it is a standard one, else "other".
// addRoutes adds route templates to the route label's values.
func (m *metrics) addRoutes(paths []string) {
	for {
		old := m.routes.Load()
		next := maps.Clone(*old)
		for _, p := range paths {
			next[p] = true
		}
		if m.routes.CompareAndSwap(old, &next) {
			return
		}
	}
}

func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// statusLabel is the status code when it is a valid one, else "other".
func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// MetricsHandler serves the server's metrics in the Prometheus format, from
// the registry in Config.Metrics when that is also a Gatherer (or from the
// server's own). With a registerer that cannot be read, it answers 404: the
// host exposes its registry itself.
func (s *Server) MetricsHandler() http.Handler {
	if s.metrics.gatherer == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(s.metrics.gatherer, promhttp.HandlerOpts{})
}

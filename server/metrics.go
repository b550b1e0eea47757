package server

import (
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
	registry *prometheus.Registry
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

func newMetrics(reg *prometheus.Registry, st Store) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	m := &metrics{registry: reg}
	m.routes.Store(&map[string]bool{})
	m.requests = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_http_requests_total", Help: "API requests by route template, method and status.",
	}, []string{"route", "method", "status"})).(*prometheus.CounterVec)
	m.latency = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "plugintoken_http_request_duration_seconds", Help: "API request latency by route template and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"route", "method"})).(*prometheus.HistogramVec)
	m.tokens = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_tokens_total", Help: "Token pairs issued (exchange) and refreshed (rotation), and tokens revoked.",
	}, []string{"event"})).(*prometheus.CounterVec)
	m.detections = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_theft_detections_total", Help: "Replayed auth codes and reused refresh tokens; each revoked a token family.",
	}, []string{"kind"})).(*prometheus.CounterVec)
	m.rateLimited = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plugintoken_rate_limited_total", Help: "Attempts refused with 429 after too many failed secrets, codes or tokens.",
	})).(prometheus.Counter)
	m.sweeps = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plugintoken_sweeps_total", Help: "Runs of the expiry sweeper.",
	})).(prometheus.Counter)
	m.swept = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_swept_total", Help: "Expired records deleted by the sweeper.",
	}, []string{"kind"})).(*prometheus.CounterVec)
	m.undecodable = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plugintoken_undecodable_records", Help: "Records the last sweep could not decode and left in place (see the log).",
	})).(prometheus.Gauge)
	if sz, ok := st.(sizer); ok {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plugintoken_database_size_bytes", Help: "Size of the database file.",
		}, func() float64 { return float64(sz.Size()) }))
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

// MetricsHandler serves the server's metrics in the Prometheus format.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
}

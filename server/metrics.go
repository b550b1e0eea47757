package server

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/plugintoken/plugintoken/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series the HTTP adapter keeps (the service
// keeps its own: core.Service.Collectors; New registers both). Routes are labelled
// by their template (/api/plugin/:pluginId/token), never by a raw path, so
// the series stay few.
type metrics struct {
	// gatherer is the registry when it can be read (MetricsHandler).
	gatherer prometheus.Gatherer
	// routes holds the route templates Mount registered (a map[string]bool
	// replaced whole on each Mount): the only values of the route label
	// besides "unmatched".
	routes   atomic.Pointer[map[string]bool]
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// refusals counts the gateway middleware's refusals by reason.
	refusals *prometheus.CounterVec
	// series holds each label set's counter and histogram once looked up
	// (a seriesKey's *series), so that a request costs a map read instead
	// of two label lookups. The label sets are few: see route.
	series sync.Map
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// collectorsOf is implemented by stores with metrics of their own (the etcd
// store's compaction and alarms): New registers them with the server's.
type collectorsOf interface{ Collectors() []prometheus.Collector }

// sizer is implemented by stores that can tell their size on disk.
type sizer interface{ Size() int64 }

func newMetrics(reg prometheus.Registerer, st store.Store, service []prometheus.Collector) (*metrics, error) {
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
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_gateway_refusals_total",
		Help: "Requests the gateway middleware (RequireToken, Middleware) refused, by reason: no_token, invalid_token, insufficient_scope, other_base, error.",
	}, []string{"reason"})
	for _, r := range []string{"no_token", "invalid_token", "insufficient_scope", "other_base", "error"} {
		m.refusals.WithLabelValues(r) // every series from 0, and no other
	}
	all := append([]prometheus.Collector{m.requests, m.latency, m.refusals}, service...)
	if c, ok := st.(collectorsOf); ok {
		all = append(all, c.Collectors()...)
	}
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
	return m, nil
}

// measure is the middleware that counts and times API requests.
func (m *metrics) measure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		k := seriesKey{m.route(c), methodLabel(c.Request().Method), c.Response().Status}
		if k.status < 100 || k.status > 599 {
			k.status = 0 // statusLabel: "other"
		}
		v, ok := m.series.Load(k)
		if !ok {
			v, _ = m.series.LoadOrStore(k, &series{
				requests: m.requests.WithLabelValues(k.route, k.method, statusLabel(k.status)),
				latency:  m.latency.WithLabelValues(k.route, k.method),
			})
		}
		s := v.(*series)
		s.requests.Inc()
		s.latency.Observe(time.Since(start).Seconds())
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

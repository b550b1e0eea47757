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
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series the HTTP adapter keeps, and the
// service's (serviceMetrics, which counts what core tells its Observer).
// New registers both. Routes are labelled
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
// It is the one ability of the store the server asks for itself, not
// through core: the core names no metrics library (core.Observer).
type collectorsOf interface{ Collectors() []prometheus.Collector }

// serviceMetrics are the service's series: a core.Observer.
type serviceMetrics struct {
	tokens      *prometheus.CounterVec
	detections  *prometheus.CounterVec
	rateLimited prometheus.Counter
	sweeps      prometheus.Counter
	swept       *prometheus.CounterVec
	undecodable prometheus.Gauge
	// by holds each event's counter, looked up once.
	by map[core.Event]prometheus.Counter
}

func newServiceMetrics() *serviceMetrics {
	m := &serviceMetrics{
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
	// Every series exists from the start, so dashboards see 0.
	m.by = map[core.Event]prometheus.Counter{core.EventRateLimited: m.rateLimited}
	for _, e := range []core.Event{core.EventIssued, core.EventRefreshed, core.EventRevoked} {
		m.by[e] = m.tokens.WithLabelValues(e.String())
	}
	for _, e := range []core.Event{core.EventCodeReplay, core.EventTokenReuse} {
		m.by[e] = m.detections.WithLabelValues(e.String())
	}
	return m
}

// Observe counts e.
func (m *serviceMetrics) Observe(e core.Event) {
	if c := m.by[e]; c != nil {
		c.Inc()
	}
}

// Swept counts a sweep.
func (m *serviceMetrics) Swept(codes, pairs, undecodable int) {
	m.sweeps.Inc()
	m.swept.WithLabelValues("auth_codes").Add(float64(codes))
	m.swept.WithLabelValues("token_pairs").Add(float64(pairs))
	m.undecodable.Set(float64(undecodable))
}

func (m *serviceMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tokens, m.detections, m.rateLimited, m.sweeps, m.swept, m.undecodable}
}

// observers tells every Observer of a list.
type observers []core.Observer

func (o observers) Observe(e core.Event) {
	for _, x := range o {
		x.Observe(e)
	}
}

func (o observers) Swept(codes, pairs, undecodable int) {
	for _, x := range o {
		x.Swept(codes, pairs, undecodable)
	}
}

func newMetrics(reg prometheus.Registerer, svc *core.Service, service *serviceMetrics) (*metrics, error) {
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
	all := append([]prometheus.Collector{m.requests, m.latency, m.refusals}, service.collectors()...)
	if c, ok := svc.Store().(collectorsOf); ok {
		all = append(all, c.Collectors()...)
	}
	if _, ok := svc.Size(); ok {
		all = append(all, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plugintoken_database_size_bytes", Help: "Size of the database file.",
		}, func() float64 { n, _ := svc.Size(); return float64(n) }))
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

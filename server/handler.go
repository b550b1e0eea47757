package server

// The standalone application: health, readiness, metrics and the request log.

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/plugintoken/plugintoken/server/core"
)

// Handler returns a standalone Echo application: the API under /api (the
// backup included),
// /healthz, /readyz and /metrics, a log line per request, and Teable's error
// body for everything, unknown routes included. The binary adds the
// reference page at /docs (package server/docs), which is linked only into
// programs that mount it.
func (s *Server) Handler() (*echo.Echo, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client address is the peer's: X-Forwarded-For is not trusted,
	// since rate limits are keyed on it.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = func(err error, c echo.Context) { s.writeError(c, err) }
	e.Use(middleware.Recover(), RequestLogger(s.log))
	healthz := func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
	// Health checks commonly use HEAD.
	e.GET("/healthz", healthz)
	e.HEAD("/healthz", healthz)
	e.GET("/readyz", s.ready)
	e.HEAD("/readyz", s.ready)
	// The root says where things are instead of a bare 404.
	e.GET("/", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{
			"service": "plugintoken", "docs": "/docs", "openapi": "/api/openapi.json", "health": "/healthz",
		})
	})
	e.GET("/metrics", echo.WrapHandler(s.MetricsHandler()))
	if _, err := s.Mount(e, "/api"); err != nil {
		return nil, err
	}
	if _, err := s.MountBackup(e, "/api"); err != nil {
		return nil, err
	}
	return e, nil
}

// ready answers 200 while the store can serve a read, and 503 otherwise.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "err", err)
		return &core.Error{Code: core.CodeServiceUnavailable, Message: "Database unavailable", Err: err, RetryAfter: time.Second}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// RequestLogger logs one line per request: method, path, status, latency and
// client address. It never logs headers, query strings or bodies, which may
// carry secrets.
func RequestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod:    true,
		LogURIPath:   true,
		LogStatus:    true,
		LogLatency:   true,
		LogRemoteIP:  true,
		LogRoutePath: true,
		// Let errors be answered before the status is logged.
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			attrs := []slog.Attr{
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("remote", v.RemoteIP),
			}
			if subject, ok := c.Get(contextKeySubject).(string); ok {
				attrs = append(attrs, slog.String("subject", subject))
			}
			if reason, ok := c.Get(contextKeyReason).(string); ok {
				attrs = append(attrs, slog.String("reason", reason))
			}
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
			return nil
		},
	})
}

// Package server serves plugintoken's service (package server/core) as
// Teable's HTTP API, and guards a gateway's own routes with its tokens.
//
// A Server embeds the service (*core.Service), so a gateway calls every
// operation in-process on it too. The HTTP adapter (api.go, unexported)
// implements the generated strict interface (package gen) over the service;
// Mount and Handler serve it with request validation against the OpenAPI
// document, the admin authentication hook, and the one mapping from errors
// to Teable's error body (errors.go). RequireToken is the gateway's Echo
// middleware for its own routes.
package server

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
)

// Config configures a Server: the service's configuration (core.Config:
// Store is required, zero means the default for the rest) and the HTTP
// adapter's.
type Config struct {
	core.Config
	// Admin authenticates the admin routes (plugins, auth codes,
	// introspection, backup) and an admin's bearer on the revocation route.
	// It is required only to mount admin routes (Mount, MountAdmin,
	// MountBackup) or with TokenRequiresBearer: a gateway that registers
	// plugins and issues codes in-process and mounts only MountPlugin needs
	// none, and then no bearer is ever accepted as an admin's.
	Admin AdminAuthenticator
	// TokenRequiresBearer enforces the upstream document's bearerAuth on
	// the token and refresh routes: they then also need a bearer accepted
	// by Admin. Off by default, as in Teable's real server, where the plugin
	// secret is the credential.
	TokenRequiresBearer bool
	// ClientAddr names the client of a request for the failure limiter's
	// keys. Default: the TCP peer's address (PeerAddr). It is never taken
	// from the host application's echo.IPExtractor or X-Forwarded-For: a
	// gateway behind a trusted proxy says here how to read its header.
	ClientAddr func(*http.Request) string
	// Metrics is where the server's Prometheus metrics are registered: a
	// host's registry, say, whose own /metrics then shows them. A name
	// already registered there (a second Server on it, or the host's own
	// metric) is an error from New, never a panic. MetricsHandler serves
	// this registry when it is also a Gatherer (a *prometheus.Registry).
	// Default: a registry of its own, with Go and process collectors.
	Metrics prometheus.Registerer
	// RenderError, when set, writes the errors of plugintoken's mounted
	// routes (and of RequireToken's refusals without HostErrors) in the
	// host's own dialect instead of Teable's {message, status, code} body,
	// which is the default and what Teable's clients read. It gets the
	// status and the error: Message is safe to show, Code is Teable's code,
	// Err is for the log only. The headers plugintoken owes the client
	// (WWW-Authenticate, Retry-After, Cache-Control) are set before it is
	// called. An error it returns is logged, and the default body is
	// written if nothing was.
	RenderError func(c echo.Context, status int, err *core.Error) error
}

// Server serves the plugintoken API over the service, which it embeds:
// every method of *core.Service (CreatePlugin, IssueAuthCode, Exchange,
// Authenticate, RevokeToken, ...) is callable on it in-process. Create it
// with New.
type Server struct {
	*core.Service
	// admin is Config.Admin, or one that refuses every bearer (hasAdmin
	// false).
	admin       AdminAuthenticator
	hasAdmin    bool
	renderError func(c echo.Context, status int, err *core.Error) error
	log         *slog.Logger
	// tokenRequiresBearer: see Config.TokenRequiresBearer.
	tokenRequiresBearer bool
	clientAddr          func(*http.Request) string
	metrics             *metrics
	// callerOps: see callerOps (auth.go's withCaller).
	callerOps map[string]bool
	// kinOnly sends every request to kin-openapi's validation, past the
	// fast path (package fastpath): the tests compare the two.
	kinOnly bool
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Admin == nil && cfg.TokenRequiresBearer {
		return nil, errors.New("server: Config.TokenRequiresBearer needs Config.Admin, to check the bearer")
	}
	log := cmp.Or(cfg.Logger, slog.Default())
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: load embedded spec: %w", err)
	}
	// One vocabulary: when the served document enumerates the token
	// operation's scopes, that enum is the vocabulary (registration, codes
	// and exchange accept the same scopes), and a configured vocabulary
	// must stay inside it.
	enum, err := scopeEnum(spec)
	if err != nil {
		return nil, err
	}
	if enum != nil {
		if cfg.Scopes == nil {
			cfg.Scopes = enum
			if extra, missing := difference(core.DefaultScopes(), enum); len(extra)+len(missing) > 0 {
				log.Info("the API document enumerates the plugin scopes: that list is the vocabulary, not the built-in one",
					"built_in_only", extra, "document_only", missing)
			}
		}
		for _, sc := range cfg.Scopes {
			if !slices.Contains(enum, sc) {
				return nil, fmt.Errorf("server: scope %q is configured but the API document's scope enum does not list it: the token operation would refuse it (leave core.Config.Scopes unset to use the enum)", sc)
			}
		}
	}
	// The service's events are counted in the server's registry, and
	// told to the host's Observer too when it set one.
	serviceMetrics := newServiceMetrics()
	coreCfg := cfg.Config
	coreCfg.Observer = serviceMetrics
	if cfg.Observer != nil {
		coreCfg.Observer = observers{cfg.Observer, serviceMetrics}
	}
	svc, err := core.New(coreCfg)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		Service:             svc,
		admin:               cfg.Admin,
		hasAdmin:            cfg.Admin != nil,
		renderError:         cfg.RenderError,
		log:                 log,
		tokenRequiresBearer: cfg.TokenRequiresBearer,
		clientAddr:          cfg.ClientAddr,
	}
	if s.clientAddr == nil {
		s.clientAddr = PeerAddr
	}
	if s.admin == nil {
		s.admin = func(*http.Request, string) (string, error) { return "", ErrUnauthorized }
	}
	if s.callerOps, err = callerOps(spec); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(cfg.Metrics, svc, serviceMetrics); err != nil {
		return nil, err
	}
	return s, nil
}

// PeerAddr is the address of a request's TCP peer, without the port: the
// default client key of the failure limiter.
func PeerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	echomiddleware "github.com/oapi-codegen/echo-middleware"
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
	// fast path (fastRoute): the tests compare the two.
	kinOnly bool
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Admin == nil && cfg.TokenRequiresBearer {
		return nil, errors.New("server: Config.TokenRequiresBearer needs Config.Admin, to check the bearer")
	}
	log := cmp.Or(cfg.Logger, slog.Default())
	// One vocabulary: when the served document enumerates the token
	// operation's scopes, that enum is the vocabulary (registration, codes
	// and exchange accept the same scopes), and a configured vocabulary
	// must stay inside it.
	enum, err := scopeEnum()
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
	svc, err := core.New(cfg.Config)
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
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: load embedded spec: %w", err)
	}
	if s.callerOps, err = callerOps(spec); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(cfg.Metrics, cfg.Store, svc.Collectors()); err != nil {
		return nil, err
	}
	return s, nil
}

// difference returns what is in a but not b, and in b but not a.
func difference(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// scopeEnum returns the values the served document allows for the token
// operation's scopes, or nil when it does not enumerate them.
func scopeEnum() ([]string, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: load embedded spec: %w", err)
	}
	body := spec.Components.Schemas["PluginTokenRequest"]
	if body == nil || body.Value == nil || body.Value.Properties["scopes"] == nil {
		return nil, errors.New("server: the embedded spec has no PluginTokenRequest.scopes: regenerate gen/")
	}
	items := body.Value.Properties["scopes"].Value.Items
	if items == nil || items.Value == nil || len(items.Value.Enum) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(items.Value.Enum))
	for _, v := range items.Value.Enum {
		sc, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("server: the API document's scope enum holds %v, not a string", v)
		}
		out = append(out, sc)
	}
	return out, nil
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

// Mount registers every plugintoken API route but the backup on e under
// prefix (for example "/api", or "/plugins/api" inside a gateway) and
// returns the group (a plain group: routes the host adds to it are the
// host's own). Requests to the routes are validated against the overlaid
// OpenAPI document, admin routes are authenticated with Config.Admin (which
// Mount requires), request bodies are decoded by plugintoken whatever e's
// Binder, and every error is answered in Teable's JSON error body (or by
// Config.RenderError), whatever e's own HTTPErrorHandler does. The overlaid
// document is served at prefix + "/openapi.json". mw run on each route
// after plugintoken has read and checked the body (and set its no-store
// headers) and before plugintoken's validator; as for any route middleware
// in Echo, they wrap the handler anew on every request. The backup route is
// MountBackup's.
func (s *Server) Mount(e *echo.Echo, prefix string, mw ...echo.MiddlewareFunc) (*echo.Group, error) {
	return s.mount(e, prefix, func(r routeRole) bool { return r != roleBackup }, mw)
}

// MountPlugin registers only the routes a plugin's backend calls: the
// token exchange (GET and POST), the refresh and the revocation. A gateway
// that registers plugins and issues codes in-process (CreatePlugin,
// IssueAuthCode) need not expose any admin route, nor configure
// Config.Admin.
func (s *Server) MountPlugin(e *echo.Echo, prefix string, mw ...echo.MiddlewareFunc) (*echo.Group, error) {
	return s.mount(e, prefix, func(r routeRole) bool { return r == rolePlugin || r == roleUnimplemented }, mw)
}

// MountAdmin registers only the admin routes: plugins, auth codes and
// introspection, authenticated with Config.Admin (which it requires). The
// backup route is MountBackup's.
func (s *Server) MountAdmin(e *echo.Echo, prefix string, mw ...echo.MiddlewareFunc) (*echo.Group, error) {
	return s.mount(e, prefix, func(r routeRole) bool { return r == roleAdmin || r == roleAdminRead }, mw)
}

// MountBackup registers GET prefix/admin/backup, which streams a hot backup
// of the store to an admin (Config.Admin, which it requires): with
// *boltstore.DB, a database file holding plugintoken's data only (never a
// host's buckets of a shared file, see boltstore.DB.Backup) that
// `plugintoken serve --db FILE` opens. It is mounted only when a host asks
// for it: a backup holds every plugin's secret hash and every token's.
func (s *Server) MountBackup(e *echo.Echo, prefix string, mw ...echo.MiddlewareFunc) (*echo.Group, error) {
	return s.mount(e, prefix, func(r routeRole) bool { return r == roleBackup }, mw)
}

// routeRole is who calls a route: the operation's x-plugintoken-role in the
// overlaid document, declared once next to the operation (openapi/overlay.yaml).
type routeRole string

const (
	// rolePlugin: a plugin's backend.
	rolePlugin routeRole = "plugin"
	// roleAdmin: an admin, authenticated by Config.Admin; a write, audited
	// with its subject.
	roleAdmin routeRole = "admin"
	// roleAdminRead: an admin's read; its handler needs no caller.
	roleAdminRead routeRole = "admin-read"
	// roleBackup: the backup, an admin route mounted apart.
	roleBackup routeRole = "backup"
	// roleUnimplemented: an upstream operation with no role, which
	// plugintoken does not implement (it answers 501), mounted with the
	// plugin routes.
	roleUnimplemented routeRole = ""
)

// roleExtension is the overlay's name for an operation's role.
const roleExtension = "x-plugintoken-role"

// roleOf returns the role the document declares for op. An operation with
// none is one that upstream added and plugintoken does not implement: it is
// mounted with the plugin routes, where it answers 501, and gets no caller
// (TestEveryOperationHasARole holds every implemented operation to a
// role). A role this build does not know is an error: a route is never
// mounted, nor given the caller, by a guess.
func roleOf(op *openapi3.Operation) (routeRole, error) {
	v, declared := op.Extensions[roleExtension]
	if !declared {
		return roleUnimplemented, nil
	}
	s, _ := v.(string)
	switch r := routeRole(s); r {
	case rolePlugin, roleAdmin, roleAdminRead, roleBackup:
		return r, nil
	}
	return "", fmt.Errorf("server: operation %s has %s %v: it must be plugin, admin, admin-read or backup (openapi/overlay.yaml)", op.OperationID, roleExtension, v)
}

// needsCaller tells the operations whose handlers get the caller
// (core.Caller): the credential checks (rate-limited per client address),
// the revocation (where the bearer is optional), the admin writes (audited
// with the subject) and the backup; not an admin's reads, nor what
// answers 501.
func needsCaller(r routeRole) bool { return r != roleAdminRead && r != roleUnimplemented }

// callerOps maps the generated handlers' operation ids (getPluginToken's is
// GetPluginToken) to whether they get the caller, from the document's roles.
func callerOps(spec *openapi3.T) (map[string]bool, error) {
	out := map[string]bool{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			r, err := roleOf(op)
			if err != nil {
				return nil, err
			}
			id := op.OperationID
			if id != "" {
				id = strings.ToUpper(id[:1]) + id[1:]
			}
			out[id] = needsCaller(r)
		}
	}
	return out, nil
}

func (s *Server) mount(e *echo.Echo, prefix string, keep func(routeRole) bool, mw []echo.MiddlewareFunc) (*echo.Group, error) {
	if !s.hasAdmin && (keep(roleAdmin) || keep(roleAdminRead) || keep(roleBackup)) {
		return nil, errors.New("server: admin routes need Config.Admin to authenticate them (MountPlugin needs none)")
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" {
		prefix = ""
	}
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: load embedded spec: %w", err)
	}
	// Advertise where the API really is, not Teable's cloud.
	spec.Servers = openapi3.Servers{{URL: prefix + "/"}}
	if s.tokenRequiresBearer {
		requireBearer(spec, "getPluginToken", "postPluginToken", "refreshPluginToken")
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("server: encode spec: %w", err)
	}
	e.GET(prefix+"/openapi.json", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, specJSON)
	})

	validation := &echomiddleware.Options{
		// KeepValidatedValue hands the decoded, checked body to the
		// binding: the body is decoded once, and the handler gets exactly
		// what was validated.
		Options: openapi3filter.Options{AuthenticationFunc: s.authenticate, KeepValidatedValue: true},
	}
	first := []echo.MiddlewareFunc{
		s.metrics.measure,
		s.answerErrors,
		noStore,
		limitBody,
		requireJSON,
		checkBody,
	}
	// The middleware goes on each route, not on the group: a group with
	// middleware answers every unmatched path under its prefix (with "/",
	// the host's whole 404 page), and would run plugintoken's validator on
	// the routes the host adds to the group.
	g := e.Group(prefix)
	r := &routes{g: g, keep: keep, spec: spec,
		before: first,
		host:   mw,
		validator: func(route *routers.Route) echo.MiddlewareFunc {
			var fast *fastRoute
			if !s.kinOnly {
				fast = newFastRoute(route, s.authenticateEcho)
			}
			return func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error {
					if handled, err := fast.validate(c); handled {
						if err != nil {
							return err
						}
						return next(c)
					}
					if err := echomiddleware.ValidateRequestFromContext(c, &foundRoute{route, c}, validation); err != nil {
						return err
					}
					return next(c)
				}
			}
		},
		after: []echo.MiddlewareFunc{ownBinding},
	}
	gen.RegisterHandlers(r, gen.NewStrictHandler(api{s: s}, []gen.StrictMiddlewareFunc{s.withCaller}))
	if r.err != nil {
		return nil, r.err
	}
	s.metrics.addRoutes(r.added)
	return g, nil
}

// foundRoute is the route Echo matched for a request, as the request
// validator's router: the validator checks the request against that
// operation without finding the route a second time.
type foundRoute struct {
	route *routers.Route
	c     echo.Context
}

func (f *foundRoute) FindRoute(*http.Request) (*routers.Route, map[string]string, error) {
	names, values := f.c.ParamNames(), f.c.ParamValues()
	params := make(map[string]string, len(names))
	for i, n := range names {
		// Echo matches the escaped path, as the validator's own router
		// did; the validator wants the values decoded.
		if v, err := url.PathUnescape(values[i]); err == nil {
			params[n] = v
		} else {
			params[n] = values[i]
		}
	}
	return f.route, params, nil
}

// routes registers the generated routes on g, each with the middleware
// before, the host's, the request validator of its operation, and after.
type routes struct {
	g             *echo.Group
	before, after []echo.MiddlewareFunc
	// host is the middleware the host gave Mount: Echo applies route
	// middleware to the handler on every request, and so does add for it
	// (and for a route's own). plugintoken's is applied once, at
	// registration.
	host      []echo.MiddlewareFunc
	validator func(*routers.Route) echo.MiddlewareFunc
	spec      *openapi3.T
	err       error
	keep      func(routeRole) bool
	// added are the route templates registered: the metrics' route label
	// values.
	added []string
}

func (r *routes) add(method, path string, h echo.HandlerFunc, m []echo.MiddlewareFunc) *echo.Route {
	specPath := echoParam.ReplaceAllString(path, "{$1}")
	item := r.spec.Paths.Value(specPath)
	var op *openapi3.Operation
	if item != nil {
		op = item.GetOperation(method)
	}
	if op == nil {
		r.err = errors.Join(r.err, fmt.Errorf("server: the embedded spec has no %s %s: regenerate gen/", method, specPath))
		return &echo.Route{Method: method, Path: path}
	}
	role, err := roleOf(op)
	if err != nil {
		r.err = errors.Join(r.err, err)
		return &echo.Route{Method: method, Path: path}
	}
	if !r.keep(role) {
		return &echo.Route{Method: method, Path: path} // not mounted here
	}
	found := &routers.Route{Spec: r.spec, Server: r.spec.Servers[0], Path: specPath, PathItem: item, Method: method, Operation: op}
	// Echo would build the route's middleware chain again on every
	// request (a closure for each, 9 allocations); plugintoken's is built
	// here, once. The host's middleware (between plugintoken's checks of
	// the body and its validator) and the route's own, m (innermost), still
	// wrap the handler anew on every request, as Echo does.
	handler := perRequest(h, m)
	handler = applyMiddleware(handler, append([]echo.MiddlewareFunc{r.validator(found)}, r.after...))
	handler = applyMiddleware(perRequest(handler, r.host), r.before)
	route := r.g.Add(method, path, handler)
	// The name Echo gives a route is its handler's: the generated one's,
	// as before, not that of the chain around it.
	route.Name = runtime.FuncForPC(reflect.ValueOf(h).Pointer()).Name()
	r.added = append(r.added, route.Path)
	return route
}

// perRequest returns h wrapped in mw anew on every request, as Echo applies
// route middleware (h itself when there is none).
func perRequest(h echo.HandlerFunc, mw []echo.MiddlewareFunc) echo.HandlerFunc {
	if len(mw) == 0 {
		return h
	}
	return func(c echo.Context) error { return applyMiddleware(h, mw)(c) }
}

// applyMiddleware wraps h in mw, the first outermost, as Echo does.
func applyMiddleware(h echo.HandlerFunc, mw []echo.MiddlewareFunc) echo.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// echoParam is a path parameter in Echo's spelling (:pluginId).
var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func (r *routes) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m)
}
func (r *routes) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m)
}
func (r *routes) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m)
}
func (r *routes) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m)
}
func (r *routes) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m)
}
func (r *routes) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m)
}
func (r *routes) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m)
}
func (r *routes) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m)
}
func (r *routes) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m)
}

// ownBinding makes the generated handlers decode request bodies with
// plugintoken's own decoder, whatever Binder (or Validator) the host
// application configured: a host binder that refuses unknown fields would
// refuse Teable's real requests (they carry a plugin's logo), and a host's
// statuses would reach plugintoken's error mapping. The body was already
// validated against the document, and what is bound is the value the
// validator checked (see bindValidated).
func ownBinding(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error { return next(&boundContext{c}) }
}

type boundContext struct{ echo.Context }

// Bind fills v from the body the validator decoded and checked; unknown
// fields are ignored. A body the validator left alone (an operation whose
// body is optional, sent without one) is decoded as JSON.
func (c *boundContext) Bind(v any) error {
	var err error
	if vb, ok := c.Request().Body.(interface{ ValidatedValue() any }); ok {
		err = bindValidated(v, vb.ValidatedValue())
	} else {
		err = json.NewDecoder(c.Request().Body).Decode(v)
	}
	if err != nil {
		return &core.Error{Code: core.CodeValidation, Message: "Request body does not decode", Err: err}
	}
	return nil
}

// requireBearer puts the bearerAuth requirement on the named operations.
func requireBearer(spec *openapi3.T, operationIDs ...string) {
	req := openapi3.SecurityRequirements{{"bearerAuth": []string{}}}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if slices.Contains(operationIDs, op.OperationID) {
				op.Security = &req
			}
		}
	}
}

// answerErrors writes any error returned below it in Teable's error body, so
// that the embedding application's error handler never sees plugintoken's
// errors.
func (s *Server) answerErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			s.writeError(c, err)
		}
		return nil
	}
}

// requireJSON answers 415 for a request body that is not JSON, before the
// validator reads it (the validator would say 400).
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		ct := r.Header.Get(echo.HeaderContentType)
		if ct == echo.MIMEApplicationJSON { // what every client sends: nothing to parse
			return next(c)
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return errNotJSON
		}
		return next(c)
	}
}

// noStore keeps tokens, secrets and codes out of every cache (RFC 6749 §5.1).
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Both values in one allocation, the response's own (a shared
		// slice could be edited in place by a host's middleware); the keys
		// are canonical already.
		v := make([]string, 2)
		v[0], v[1] = "no-store", "no-cache"
		h := c.Response().Header()
		h[echo.HeaderCacheControl], h["Pragma"] = v[0:1:1], v[1:2:2]
		return next(c)
	}
}

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
	if err := s.Store().Ping(ctx); err != nil {
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

package server

// Mounting the API on an Echo application.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/internal/fastpath"
)

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
			var fast *fastpath.Route
			if !s.kinOnly {
				fast = fastpath.New(route, s.authenticateEcho)
			}
			return func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error {
					if handled, err := fast.Validate(c); handled {
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

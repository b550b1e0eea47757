package server

// Registering the generated routes with plugintoken's middleware.

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"runtime"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

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

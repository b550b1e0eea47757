// Package fastpath validates a request against its OpenAPI operation
// without kin-openapi's interpretive overhead, for the operations whose
// every part it can compile, and proves nothing it cannot: a request it
// cannot prove valid goes to kin-openapi, which answers as it always did.
// Its contract, "accepts only what kin-openapi accepts", is held by
// differential tests: FuzzRoute here and package bodycheck's FuzzCheck, each
// with a random generator and a committed corpus (make fuzz), and
// server's TestFastPathAnswersAsKinOpenAPI end to end.
package fastpath

import (
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server/internal/bodycheck"
)

// Route validates a request against its operation without kin-
// openapi's interpretive overhead, for the operations whose every part it
// can: path parameters and a JSON body whose schemas package bodycheck
// compiles, and security requirements of declared schemes. It only ever
// proves a request valid: a request it cannot prove (an invalid body or
// parameter, an empty body, another media type) goes to kin-openapi's
// whole validation, which answers as it always did. Security is checked
// last here, after the checks that have no effect, so that the
// authenticator runs once, as in kin-openapi (security first, then
// parameters, then the body, stopping at the first failure: a request the
// fast path sends on to kin-openapi has not been authenticated yet).
type Route struct {
	params []fastParam
	body   *fastBody // nil: the operation has no request body
	// security is the operation's requirements (alternatives), each as its
	// schemes in name order; requirements is the same as the document has
	// it (for the refusal's error).
	security     [][]fastScheme
	requirements openapi3.SecurityRequirements
	auth         Auth
}

// Auth is an authenticator as the fast path calls it: with the echo
// context and the scheme, and nothing to allocate (package server's
// authenticateEcho). Its refusal is the request's answer.
type Auth func(c echo.Context, name string, scheme *openapi3.SecurityScheme, scopes []string) error

type fastScheme struct {
	name   string
	scheme *openapi3.SecurityScheme
	scopes []string
}

type fastParam struct {
	name    string
	checker *bodycheck.Checker
}

// New compiles route, or returns nil (always ask kin-openapi).
func New(route *routers.Route, auth Auth) *Route {
	// An OpenAPI 3.1 document's schemas are JSON Schema 2020-12, which
	// bodycheck does not read.
	if route.Spec.IsOpenAPI31OrLater() {
		return nil
	}
	f := &Route{auth: auth}
	op := route.Operation
	// The parameters kin-openapi checks: the path item's, less those the
	// operation redefines, then the operation's.
	var params []*openapi3.Parameter
	for _, ref := range route.PathItem.Parameters {
		if op.Parameters == nil || op.Parameters.GetByInAndName(ref.Value.In, ref.Value.Name) == nil {
			params = append(params, ref.Value)
		}
	}
	for _, ref := range op.Parameters {
		params = append(params, ref.Value)
	}
	for _, p := range params {
		if p == nil || p.In != openapi3.ParameterInPath || !p.Required || p.Content != nil || p.AllowEmptyValue ||
			(p.Style != "" && p.Style != openapi3.SerializationSimple) || (p.Explode != nil && *p.Explode) || p.Schema == nil ||
			p.Schema.Value == nil || !p.Schema.Value.Type.Is(openapi3.TypeString) {
			return nil
		}
		c, err := bodycheck.Compile(p.Schema)
		if err != nil {
			return nil
		}
		f.params = append(f.params, fastParam{name: p.Name, checker: c})
	}
	if op.RequestBody != nil {
		if f.body = newFastBody(route); f.body == nil {
			return nil
		}
	}
	security := op.Security
	if security == nil {
		security = &route.Spec.Security
	}
	f.requirements = *security
	for _, req := range *security {
		var schemes []fastScheme
		for _, name := range slices.Sorted(maps.Keys(req)) {
			if route.Spec.Components == nil || route.Spec.Components.SecuritySchemes[name] == nil ||
				route.Spec.Components.SecuritySchemes[name].Value == nil {
				return nil // kin-openapi answers "not declared"
			}
			schemes = append(schemes, fastScheme{name, route.Spec.Components.SecuritySchemes[name].Value, req[name]})
		}
		f.security = append(f.security, schemes)
	}
	return f
}

// Validate returns whether the fast path decided the request: nil, valid
// (the request's body then carries its value for the handler, as kin-
// openapi's KeepValidatedValue does: a body with a ValidatedValue method);
// or the refusal of its security check. handled false: ask kin-openapi.
// A nil Route decides nothing.
func (f *Route) Validate(c echo.Context) (handled bool, err error) {
	if f == nil {
		return false, nil
	}
	r := c.Request()
	var value any
	if f.body != nil {
		var ok bool
		if value, ok = f.body.check(r); !ok {
			return false, nil
		}
	}
	for _, p := range f.params {
		v := c.Param(p.name)
		// Echo matches the escaped path; kin-openapi checks the value
		// decoded (as foundRoute hands it over).
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		// An empty value is kin-openapi's to judge (it has rules of its
		// own for empty parameters).
		if v == "" || !slices.Contains(c.ParamNames(), p.name) || !p.checker.CheckValue(v) {
			return false, nil
		}
	}
	if err := f.authenticate(c); err != nil {
		return true, err
	}
	if f.body != nil {
		r.Body = validatedBody{ReadCloser: r.Body, value: value}
	}
	return true, nil
}

// authenticate is kin-openapi's ValidateSecurityRequirements, with its
// refusal as echo-middleware answers it: the requirements are
// alternatives, tried in order until one holds; each holds when every
// scheme it names (in name order) is accepted; when none holds, the answer
// is the first refusal that is an *echo.HTTPError (Server.authenticate's
// always are), else a 403.
func (f *Route) authenticate(c echo.Context) error {
	if len(f.security) == 0 {
		return nil
	}
	var errs []error
	for _, req := range f.security {
		var err error
		for _, sc := range req {
			if err = f.auth(c, sc.name, sc.scheme, sc.scopes); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if he, ok := err.(*echo.HTTPError); ok {
			return he
		}
	}
	e := &openapi3filter.SecurityRequirementsError{SecurityRequirements: f.requirements, Errors: errs}
	return &echo.HTTPError{Code: http.StatusForbidden, Message: e.Error(), Internal: e}
}

// fastBody is a Route's check of the request body against its
// operation's JSON schema, compiled by package bodycheck.
type fastBody struct {
	content *openapi3.MediaType
	body    *openapi3.RequestBody
	checker *bodycheck.Checker
}

// newFastBody compiles route's body schema, or returns nil (always ask
// kin-openapi): an operation without a JSON body, a schema bodycheck
// declines.
func newFastBody(route *routers.Route) *fastBody {
	rb := route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		return nil
	}
	content := rb.Value.Content.Get(echo.MIMEApplicationJSON)
	if content == nil || content.Schema == nil || len(content.Encoding) > 0 {
		return nil
	}
	checker, err := bodycheck.Compile(content.Schema)
	if err != nil {
		return nil
	}
	return &fastBody{content: content, body: rb.Value, checker: checker}
}

// check returns the body's value when it is proven valid. kin-openapi
// would take the same media type entry for the request's Content-Type and
// decode the body as JSON (requireJSON has refused other types already).
func (f *fastBody) check(r *http.Request) (any, bool) {
	pb, ok := r.Body.(Parsed)
	if !ok {
		return nil, false
	}
	value, ok := pb.ParsedJSON()
	if !ok {
		return nil, false
	}
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), echo.MIMEApplicationJSON) || f.body.Content.Get(ct) != f.content {
		return nil, false
	}
	if !f.checker.CheckValue(value) {
		return nil, false
	}
	return value, true
}

// Parsed is a request body its reader has read whole and parsed already
// (with bodycheck.Parse): the fast path checks that value instead of
// reading the body again. A body that is not Parsed goes to kin-openapi.
type Parsed interface {
	// ParsedJSON returns the body's JSON value, and false when the body
	// was not parsed, or was read from since.
	ParsedJSON() (value any, ok bool)
}

// validatedBody is a body the fast path checked, with the value the
// handler binds: the same shape as kin-openapi's.
type validatedBody struct {
	io.ReadCloser
	value any
}

// ValidatedValue is the body's checked value.
func (b validatedBody) ValidatedValue() any { return b.value }

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
)

// contextKeyPrincipal is where RequireToken leaves the token it admitted.
const contextKeyPrincipal = "plugintoken.principal"

// PrincipalFrom returns the Principal that RequireToken admitted the request
// with.
func PrincipalFrom(c echo.Context) (core.Principal, bool) {
	t, ok := c.Get(contextKeyPrincipal).(core.LiveToken)
	if !ok {
		return core.Principal{}, false
	}
	return t.Principal(), true
}

type principalKey struct{}

// PrincipalFromContext returns the Principal that Middleware admitted the
// request with (from the request's context).
func PrincipalFromContext(ctx context.Context) (core.Principal, bool) {
	t, ok := ctx.Value(principalKey{}).(core.LiveToken)
	if !ok {
		return core.Principal{}, false
	}
	return t.Principal(), true
}

// TokenCheck says what the gateway middleware (RequireTokenWith, Middleware)
// demands of a request to one of the gateway's own routes.
type TokenCheck struct {
	// Scopes the access token must hold, every one.
	Scopes []string
	// Realm is the realm of the WWW-Authenticate challenge. Default
	// "plugintoken".
	Realm string
	// BaseParam, when set, names the route parameter that holds a base id
	// (Echo's c.Param, net/http's r.PathValue): a token issued for another
	// base is refused with 403 (ErrOtherBase), so a token for bseA never
	// reaches /v1/bases/bseB/....
	//
	// net/http fills r.PathValue only inside a ServeMux route whose
	// pattern names the parameter: Middleware wrapped around a whole
	// ServeMux (it runs before the mux routes), or used under chi or
	// gorilla/mux, finds no value. Such a request is answered 500 and the
	// mistake is logged once, never mistaken for another base; use Base
	// there.
	BaseParam string
	// Base, when set, returns the base id a request is for, wherever it
	// is (chi.URLParam(r, "base"), mux.Vars(r)["base"], a header), and is
	// used instead of BaseParam. An empty base is refused as another
	// base's.
	Base func(r *http.Request) string
	// Skipper, when it returns true, lets a request through unchecked and
	// without a Principal (a health route under a protected group, say), as
	// Echo's own auth middleware do.
	Skipper func(r *http.Request) bool
	// HostErrors hands refusals to the host instead of answering them in
	// Teable's error body: RequireTokenWith returns an *echo.HTTPError (the
	// host's HTTPErrorHandler renders it), and Middleware calls OnError.
	// Either way the error is one of ErrNoToken, ErrInvalidToken,
	// ErrInsufficientScope or ErrOtherBase for errors.Is (or an internal
	// error), and the WWW-Authenticate header is set.
	HostErrors bool
	// OnError renders a refusal for Middleware when HostErrors is set
	// (default: http.Error with the message).
	OnError func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// The gateway middleware's refusals (RequireToken, RequireTokenWith,
// Middleware), for errors.Is on what reaches a host's error handler with
// TokenCheck.HostErrors. Each is counted in
// plugintoken_gateway_refusals_total by its reason label.
var (
	// ErrNoToken: the request has no Authorization header (401, with a
	// challenge and no error code, RFC 6750 §3.1).
	ErrNoToken = &core.Error{Code: core.CodeUnauthorized, Reason: "no_token", Message: core.ErrInvalidAccessToken.Message}
	// ErrInvalidToken: the header is not a bearer, or the token is unknown,
	// expired, revoked or a refresh token (401, error="invalid_token"). It
	// is the service's own refusal, core.ErrInvalidAccessToken.
	ErrInvalidToken = core.ErrInvalidAccessToken
	// ErrInsufficientScope: the token lacks a scope the route demands
	// (403, error="insufficient_scope").
	ErrInsufficientScope = &core.Error{Code: core.CodeRestricted, Reason: "insufficient_scope", Message: "The access token lacks a required scope"}
	// ErrOtherBase: the token was issued for another base than the
	// route's (403, error="insufficient_scope").
	ErrOtherBase = &core.Error{Code: core.CodeRestricted, Reason: "other_base", Message: "The access token was issued for another base"}
)

// refusal is why a request was turned away.
type refusal struct {
	status    int
	challenge string
	err       *core.Error
	counted   prometheus.Counter
}

// Canonical header keys: a refusal sets its two headers from one
// allocation (the response owns the values; nothing is shared between
// responses).
var (
	keyWWWAuthenticate = textproto.CanonicalMIMEHeaderKey(echo.HeaderWWWAuthenticate)
	keyContentType     = textproto.CanonicalMIMEHeaderKey(echo.HeaderContentType)
)

// checker admits requests for one TokenCheck. Its refusals (with their
// WWW-Authenticate challenges) are made once, not per request.
type checker struct {
	s                             *Server
	tc                            TokenCheck
	missing, invalid, scope, base *refusal
	// failed counts internal failures (the store, or a misplaced
	// BaseParam).
	failed prometheus.Counter
}

func (s *Server) checker(tc TokenCheck) *checker {
	tc.Scopes = slices.Clone(tc.Scopes)
	realm := tc.Realm
	if realm == "" {
		realm = "plugintoken"
	}
	insufficient := fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, realm, strings.Join(tc.Scopes, " "))
	r := s.metrics.refusals
	return &checker{s: s, tc: tc,
		missing: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q`, realm), ErrNoToken, r.WithLabelValues("no_token")},
		invalid: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, realm), ErrInvalidToken, r.WithLabelValues("invalid_token")},
		scope:   &refusal{http.StatusForbidden, insufficient, ErrInsufficientScope, r.WithLabelValues("insufficient_scope")},
		base:    &refusal{http.StatusForbidden, insufficient, ErrOtherBase, r.WithLabelValues("other_base")},
		failed:  r.WithLabelValues("error"),
	}
}

// errBaseParamMisplaced is the error (answered 500, and logged) of a
// request whose route does not have the parameter TokenCheck.BaseParam
// names: the host's wiring is wrong, and no request can pass.
var errBaseParamMisplaced = errors.New("server: TokenCheck.BaseParam names no parameter of this request's route. " +
	"With net/http, Middleware must wrap the handler of a ServeMux pattern that names it, not the whole mux; " +
	"under chi or gorilla/mux, set TokenCheck.Base instead")

// check admits a request with the Authorization header and the base of its
// route (when BaseParam or Base is set; found false when BaseParam names no
// parameter of the route), returning the token, or a refusal (or an
// internal error).
func (k *checker) check(ctx context.Context, header, base string, found bool) (core.LiveToken, *refusal, error) {
	t, no, err := k.decide(ctx, header, base, found)
	switch {
	case err != nil:
		k.failed.Inc()
	case no != nil:
		no.counted.Inc()
	}
	return t, no, err
}

func (k *checker) decide(ctx context.Context, header, base string, found bool) (core.LiveToken, *refusal, error) {
	if !found {
		return core.LiveToken{}, nil, fmt.Errorf("%w (BaseParam %q)", errBaseParamMisplaced, k.tc.BaseParam)
	}
	if header == "" {
		return core.LiveToken{}, k.missing, nil // RFC 6750 §3.1: no credentials, no error code
	}
	token, ok := bearerToken(header)
	if !ok {
		return core.LiveToken{}, k.invalid, nil
	}
	t, ok, err := k.s.LiveAccessToken(ctx, token)
	switch {
	case err != nil:
		return core.LiveToken{}, nil, err
	case !ok:
		return core.LiveToken{}, k.invalid, nil
	case !t.HasScopes(k.tc.Scopes):
		return core.LiveToken{}, k.scope, nil
	case (k.tc.BaseParam != "" || k.tc.Base != nil) && (base == "" || base != t.BaseID()):
		return core.LiveToken{}, k.base, nil
	}
	return t, nil, nil
}

// echoBase is the base of an Echo request: found is false when BaseParam
// names no parameter of the matched route.
func (k *checker) echoBase(c echo.Context) (base string, found bool) {
	switch {
	case k.tc.Base != nil:
		return k.tc.Base(c.Request()), true
	case k.tc.BaseParam == "":
		return "", true
	}
	for i, n := range c.ParamNames() {
		if n == k.tc.BaseParam {
			if vs := c.ParamValues(); i < len(vs) {
				return vs[i], true
			}
		}
	}
	return "", false
}

// httpBase is the base of a net/http request: found is false when the
// request was not routed by a ServeMux pattern naming BaseParam.
func (k *checker) httpBase(r *http.Request) (base string, found bool) {
	switch {
	case k.tc.Base != nil:
		return k.tc.Base(r), true
	case k.tc.BaseParam == "":
		return "", true
	}
	p := r.Pattern
	if !strings.Contains(p, "{"+k.tc.BaseParam+"}") && !strings.Contains(p, "{"+k.tc.BaseParam+"...}") {
		return "", false
	}
	return r.PathValue(k.tc.BaseParam), true
}

// RequireToken returns Echo middleware for an embedding gateway's own routes:
// it admits a request only with `Authorization: Bearer <access token>` for a
// live plugintoken access token holding every one of scopes, checked against
// the store in-process (no HTTP hop), and puts the Principal on the echo
// context (see PrincipalFrom). Otherwise it answers, in Teable's error body,
// 401 with `WWW-Authenticate: Bearer realm="plugintoken"` (no credentials;
// RFC 6750 §3.1) or with `error="invalid_token"` (an unknown, expired,
// revoked or refresh token), or 403 with `error="insufficient_scope"`.
// RequireTokenWith takes more options.
func (s *Server) RequireToken(scopes ...string) echo.MiddlewareFunc {
	return s.RequireTokenWith(TokenCheck{Scopes: scopes})
}

// RequireTokenWith is RequireToken with the options of tc: a realm, a route
// parameter the token's base must match, and refusals rendered by the
// host's own error handler.
func (s *Server) RequireTokenWith(tc TokenCheck) echo.MiddlewareFunc {
	k := s.checker(tc)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if tc.Skipper != nil && tc.Skipper(c.Request()) {
				return next(c)
			}
			base, found := k.echoBase(c)
			t, no, err := k.check(c.Request().Context(), c.Request().Header.Get(echo.HeaderAuthorization), base, found)
			switch {
			case err != nil && tc.HostErrors:
				return err
			case err != nil:
				s.writeError(c, err)
				return nil
			case no != nil:
				h := c.Response().Header()
				values := [2]string{no.challenge, echo.MIMEApplicationJSON}
				vs := values[:]
				h[keyWWWAuthenticate] = vs[0:1:1]
				if tc.HostErrors {
					return echo.NewHTTPError(no.status, no.err.Message).SetInternal(no.err)
				}
				if s.renderError != nil {
					s.writeError(c, no.err)
					return nil
				}
				// The body of a refusal is always the same: written from
				// bytes made once, so that a made-up token costs no more
				// than a live one.
				h[keyContentType] = vs[1:2:2]
				c.Response().WriteHeader(no.status)
				_, _ = c.Response().Write(refusalBodies[no.err])
				return nil
			}
			// The live token itself, not a Principal built from it:
			// storing it (one pointer) costs no allocation. PrincipalFrom
			// copies.
			c.Set(contextKeyPrincipal, t)
			return next(c)
		}
	}
}

// Middleware is RequireTokenWith for net/http: it admits a request as
// RequireTokenWith does and puts the Principal on the request's context
// (see PrincipalFromContext). Refusals are answered in Teable's error body,
// or by tc.OnError with tc.HostErrors.
func (s *Server) Middleware(tc TokenCheck) func(http.Handler) http.Handler {
	k := s.checker(tc)
	onError := tc.OnError
	if onError == nil {
		onError = func(w http.ResponseWriter, _ *http.Request, status int, err error) {
			http.Error(w, err.Error(), status)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.Skipper != nil && tc.Skipper(r) {
				next.ServeHTTP(w, r)
				return
			}
			base, found := k.httpBase(r)
			t, no, err := k.check(r.Context(), r.Header.Get("Authorization"), base, found)
			if err != nil {
				no = &refusal{status: http.StatusInternalServerError, err: asError(err).e}
				s.log.ErrorContext(r.Context(), "request failed", "err", err)
			}
			if no != nil {
				if no.challenge != "" {
					w.Header().Set("WWW-Authenticate", no.challenge)
				}
				if tc.HostErrors {
					onError(w, r, no.status, no.err)
					return
				}
				writeErrorHTTP(w, answer{no.err, no.status})
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, t)))
		})
	}
}

// refusalBodies are the gateway middleware's refusals in Teable's error
// body, encoded once.
var refusalBodies = func() map[*core.Error][]byte {
	m := map[*core.Error][]byte{}
	for _, e := range []*core.Error{ErrNoToken, ErrInvalidToken, ErrInsufficientScope, ErrOtherBase} {
		b, _ := json.Marshal(gen.Error{Message: e.Message, Status: e.Status(), Code: string(e.Code)})
		m[e] = append(b, '\n')
	}
	return m
}()

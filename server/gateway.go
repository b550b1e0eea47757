package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

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
	// base is refused with 403, so a token for bseA never reaches
	// /v1/bases/bseB/....
	BaseParam string
	// HostErrors hands refusals to the host instead of answering them in
	// Teable's error body: RequireTokenWith returns an *echo.HTTPError (the
	// host's HTTPErrorHandler renders it), and Middleware calls OnError.
	// The WWW-Authenticate header is set either way.
	HostErrors bool
	// OnError renders a refusal for Middleware when HostErrors is set
	// (default: http.Error with the message).
	OnError func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// refusal is why a request was turned away.
type refusal struct {
	status    int
	challenge string
	err       *core.Error
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
}

func (s *Server) checker(tc TokenCheck) *checker {
	tc.Scopes = slices.Clone(tc.Scopes)
	realm := tc.Realm
	if realm == "" {
		realm = "plugintoken"
	}
	insufficient := fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, realm, strings.Join(tc.Scopes, " "))
	return &checker{s: s, tc: tc,
		missing: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q`, realm), core.ErrInvalidAccessToken},
		invalid: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, realm), core.ErrInvalidAccessToken},
		scope:   &refusal{http.StatusForbidden, insufficient, errInsufficientScope},
		base:    &refusal{http.StatusForbidden, insufficient, errOtherBase},
	}
}

// check admits a request with the Authorization header and the base of its
// route (when BaseParam is set), returning the token, or a refusal (or an
// internal error).
func (k *checker) check(ctx context.Context, header, base string) (core.LiveToken, *refusal, error) {
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
	case k.tc.BaseParam != "" && base != t.BaseID():
		return core.LiveToken{}, k.base, nil
	}
	return t, nil, nil
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
			var base string
			if tc.BaseParam != "" {
				base = c.Param(tc.BaseParam)
			}
			t, no, err := k.check(c.Request().Context(), c.Request().Header.Get(echo.HeaderAuthorization), base)
			switch {
			case err != nil && tc.HostErrors:
				return err
			case err != nil:
				writeError(c, s.log, err)
				return nil
			case no != nil:
				h := c.Response().Header()
				values := [2]string{no.challenge, echo.MIMEApplicationJSON}
				vs := values[:]
				h[keyWWWAuthenticate] = vs[0:1:1]
				if tc.HostErrors {
					return echo.NewHTTPError(no.status, no.err.Message).SetInternal(no.err)
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
			var base string
			if tc.BaseParam != "" {
				base = r.PathValue(tc.BaseParam)
			}
			t, no, err := k.check(r.Context(), r.Header.Get("Authorization"), base)
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

var (
	errInsufficientScope = core.Errorf(core.CodeRestricted, "The access token lacks a required scope")
	errOtherBase         = core.Errorf(core.CodeRestricted, "The access token was issued for another base")
)

// refusalBodies are the gateway middleware's refusals in Teable's error
// body, encoded once.
var refusalBodies = func() map[*core.Error][]byte {
	m := map[*core.Error][]byte{}
	for _, e := range []*core.Error{core.ErrInvalidAccessToken, errInsufficientScope, errOtherBase} {
		b, _ := json.Marshal(gen.Error{Message: e.Message, Status: e.Status(), Code: string(e.Code)})
		m[e] = append(b, '\n')
	}
	return m
}()

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store"
)

// Principal is what a valid access token grants: the plugin acting, the base
// it acts in and the scopes it holds. It is the caller's own copy.
type Principal struct {
	PluginID string
	BaseID   string
	// Subject is who the token's auth code was issued for (IssueAuthCode),
	// or empty.
	Subject   string
	Scopes    []string
	ExpiresAt time.Time
}

// contextKeyPrincipal is where RequireToken leaves the token it admitted.
const contextKeyPrincipal = "plugintoken.principal"

// PrincipalFrom returns the Principal that RequireToken admitted the request
// with.
func PrincipalFrom(c echo.Context) (Principal, bool) {
	t, ok := c.Get(contextKeyPrincipal).(*store.Token)
	if !ok {
		return Principal{}, false
	}
	return principalOf(t), true
}

type principalKey struct{}

// PrincipalFromContext returns the Principal that Middleware admitted the
// request with (from the request's context).
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	t, ok := ctx.Value(principalKey{}).(*store.Token)
	if !ok {
		return Principal{}, false
	}
	return principalOf(t), true
}

// principalOf is what a live access token grants. The token is the store's
// (possibly cached) record: the principal has its own copy of the scopes,
// so that a caller editing them changes nothing here.
func principalOf(t *store.Token) Principal {
	return Principal{PluginID: t.PluginID, BaseID: t.BaseID, Subject: t.Subject, Scopes: slices.Clone(t.Scopes), ExpiresAt: t.ExpiresAt}
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
	err       *Error
}

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
		missing: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q`, realm), errInvalidAccessToken},
		invalid: &refusal{http.StatusUnauthorized, fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, realm), errInvalidAccessToken},
		scope:   &refusal{http.StatusForbidden, insufficient, errInsufficientScope},
		base:    &refusal{http.StatusForbidden, insufficient, errOtherBase},
	}
}

// check admits a request with the Authorization header and the base of its
// route (when BaseParam is set), returning the token, or a refusal (or an
// internal error).
func (k *checker) check(ctx context.Context, header, base string) (*store.Token, *refusal, error) {
	if header == "" {
		return nil, k.missing, nil // RFC 6750 §3.1: no credentials, no error code
	}
	token, ok := bearerToken(header)
	if !ok || !strings.HasPrefix(token, PrefixAccessToken) {
		return nil, k.invalid, nil
	}
	t, err := k.s.lookupToken(ctx, token, k.s.now())
	if err != nil {
		return nil, nil, err
	}
	if t == nil || t.Kind != store.KindAccess {
		return nil, k.invalid, nil
	}
	for _, want := range k.tc.Scopes {
		if !slices.Contains(t.Scopes, want) {
			return nil, k.scope, nil
		}
	}
	if k.tc.BaseParam != "" && base != t.BaseID {
		return nil, k.base, nil
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
				h.Set(echo.HeaderWWWAuthenticate, no.challenge)
				if tc.HostErrors {
					return echo.NewHTTPError(no.status, no.err.Message).SetInternal(no.err)
				}
				// The body of a refusal is always the same: written from
				// bytes made once, so that a made-up token costs no more
				// than a live one.
				h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
				c.Response().WriteHeader(no.status)
				_, _ = c.Response().Write(refusalBodies[no.err])
				return nil
			}
			// The shared token itself, not a Principal built from it:
			// storing a pointer costs no allocation. PrincipalFrom copies.
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
				no = &refusal{status: http.StatusInternalServerError, err: asError(err)}
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
				writeErrorHTTP(w, no.err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, t)))
		})
	}
}

var (
	errInvalidAccessToken = Errorf(CodeUnauthorized, "A valid plugin access token is required")
	errInsufficientScope  = Errorf(CodeRestricted, "The access token lacks a required scope")
	errOtherBase          = Errorf(CodeRestricted, "The access token was issued for another base")
)

// refusalBodies are the gateway middleware's refusals in Teable's error
// body, encoded once.
var refusalBodies = func() map[*Error][]byte {
	m := map[*Error][]byte{}
	for _, e := range []*Error{errInvalidAccessToken, errInsufficientScope, errOtherBase} {
		b, _ := json.Marshal(gen.Error{Message: e.Message, Status: e.Status(), Code: string(e.Code)})
		m[e] = append(b, '\n')
	}
	return m
}()

package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/store"
)

// Principal is what a valid access token grants: the plugin acting, the base
// it acts in and the scopes it holds. It is the caller's own copy.
type Principal struct {
	PluginID  string
	BaseID    string
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

// principalOf is what a live access token grants. The token is the store's
// (possibly cached) record: the principal has its own copy of the scopes,
// so that a caller editing them changes nothing here.
func principalOf(t *store.Token) Principal {
	return Principal{PluginID: t.PluginID, BaseID: t.BaseID, Scopes: slices.Clone(t.Scopes), ExpiresAt: t.ExpiresAt}
}

// RequireToken returns Echo middleware for an embedding gateway's own routes:
// it admits a request only with `Authorization: Bearer <access token>` for a
// live plugintoken access token holding every one of scopes, checked against
// the store in-process (no HTTP hop), and puts the Principal on the echo
// context (see PrincipalFrom). Otherwise it answers, in Teable's error body,
// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (no, unknown,
// expired or revoked token, or a refresh token) or 403 with
// `error="insufficient_scope"` (RFC 6750 §3).
func (s *Server) RequireToken(scopes ...string) echo.MiddlewareFunc {
	insufficient := fmt.Sprintf(`Bearer realm="plugintoken", error="insufficient_scope", scope=%q`, strings.Join(scopes, " "))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok || !strings.HasPrefix(token, PrefixAccessToken) {
				return s.refuse(c, http.StatusUnauthorized, `Bearer realm="plugintoken", error="invalid_token"`, errInvalidAccessToken)
			}
			t, err := s.lookupToken(c.Request().Context(), token, s.now())
			if err != nil {
				writeError(c, s.log, err)
				return nil
			}
			if t == nil || t.Kind != store.KindAccess {
				return s.refuse(c, http.StatusUnauthorized, `Bearer realm="plugintoken", error="invalid_token"`, errInvalidAccessToken)
			}
			for _, want := range scopes {
				if !slices.Contains(t.Scopes, want) {
					return s.refuse(c, http.StatusForbidden, insufficient, errInsufficientScope)
				}
			}
			// The shared token itself, not a Principal built from it:
			// storing a pointer costs no allocation.
			c.Set(contextKeyPrincipal, t)
			return next(c)
		}
	}
}

var (
	errInvalidAccessToken = Errorf(CodeUnauthorized, "A valid plugin access token is required")
	errInsufficientScope  = Errorf(CodeRestricted, "The access token lacks a required scope")
)

// refuse answers a request RequireToken turned away.
func (s *Server) refuse(c echo.Context, status int, challenge string, err *Error) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	writeError(c, s.log, err)
	return nil
}

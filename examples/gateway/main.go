// Command gateway is an example API gateway that embeds plugintoken the way
// the README's embedding section shows: an Echo application with its own
// middleware, binder, validator, error handler, Prometheus registry and
// bbolt file, in which plugintoken
//
//   - keeps its buckets under one top-level bucket of the gateway's own
//     database (boltstore.OpenDB);
//   - serves only the routes a plugin's backend calls (MountPlugin, under
//     /auth), while the gateway registers plugins and issues auth codes
//     in-process for its signed-in users;
//   - protects the gateway's own routes in-process, with scopes and the
//     token's base bound to the route (RequireTokenWith), refusals rendered
//     by the gateway's own error handler;
//   - reports its metrics in the gateway's registry.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

func main() {
	g, err := New(filepath.Join("data", "gateway.db"), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	log.Fatal(g.Echo.Start("127.0.0.1:8090"))
}

// Gateway is the example gateway.
type Gateway struct {
	Echo     *echo.Echo
	Tokens   *server.Server
	Registry *prometheus.Registry
	db       *bolt.DB
	store    *boltstore.DB
}

// strictBinder is the gateway's own binder: it refuses unknown fields. It
// never sees plugintoken's requests.
type strictBinder struct{}

func (strictBinder) Bind(v any, c echo.Context) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	return nil
}

// refusingValidator stands for a host validator with rules of its own; it
// refuses everything, and plugintoken's routes never consult it.
type refusingValidator struct{}

func (refusingValidator) Validate(any) error {
	return echo.NewHTTPError(http.StatusUnprocessableEntity, "the gateway's validator says no")
}

// sessionUser is the gateway's own sign-in: here a cookie naming the user.
func sessionUser(r *http.Request) (string, bool) {
	ck, err := r.Cookie("session")
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// New builds the gateway on its bbolt file at path.
func New(path string, logger *slog.Logger) (*Gateway, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	st, err := boltstore.OpenDB(db, boltstore.Options{}) // plugintoken's buckets under "plugintoken"
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	g := &Gateway{Echo: echo.New(), Registry: prometheus.NewRegistry(), db: db, store: st}
	g.Tokens, err = server.New(server.Config{
		Config:  core.Config{Store: st, Logger: logger},
		Metrics: g.Registry,
		// No admin route is mounted; this check would serve them if they were.
		Admin: func(r *http.Request, _ string) (string, error) {
			user, ok := sessionUser(r)
			switch {
			case ok && user == "expired":
				// The gateway's own status for a stale session: kept as is.
				return "", echo.NewHTTPError(http.StatusUnprocessableEntity, "session expired")
			case ok && user == "admin":
				return user, nil
			}
			return "", server.ErrUnauthorized
		},
	})
	if err != nil {
		g.Close()
		return nil, err
	}

	e := g.Echo
	e.HideBanner = true
	e.Use(middleware.Recover(), middleware.RequestID(), middleware.CORS())
	e.Binder, e.Validator = strictBinder{}, refusingValidator{}
	e.IPExtractor = echo.ExtractIPFromXFFHeader() // the gateway's choice; plugintoken keys on the TCP peer
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
		}
		_ = c.JSON(status, map[string]any{"gatewayError": http.StatusText(status)})
	}

	if _, err := g.Tokens.MountPlugin(e, "/auth"); err != nil {
		g.Close()
		return nil, err
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(g.Registry, promhttp.HandlerOpts{})))

	// The gateway's signed-in user authorises a plugin for a base: the code
	// is issued in-process, for that user.
	e.POST("/v1/plugins/:plugin/codes", func(c echo.Context) error {
		user, ok := sessionUser(c.Request())
		if !ok {
			return echo.NewHTTPError(http.StatusUnauthorized)
		}
		var req struct {
			BaseID string `json:"baseId"`
		}
		if err := c.Bind(&req); err != nil {
			return err
		}
		code, err := g.Tokens.IssueAuthCode(c.Request().Context(), c.Param("plugin"), req.BaseID, user)
		if err != nil {
			var pe *core.Error
			if errors.As(err, &pe) {
				return echo.NewHTTPError(pe.Status(), pe.Message)
			}
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"code": code.Code, "expiresIn": code.ExpiresIn.Seconds()})
	})

	// The gateway's own data, for plugins holding record|read on that base.
	e.GET("/v1/bases/:base/records", func(c echo.Context) error {
		who, _ := server.PrincipalFrom(c)
		return c.JSON(http.StatusOK, map[string]any{"base": who.BaseID, "for": who.Subject, "plugin": who.PluginID})
	}, g.Tokens.RequireTokenWith(server.TokenCheck{Scopes: []string{"record|read"}, BaseParam: "base", Realm: "gateway", HostErrors: true}))
	return g, nil
}

// Close closes plugintoken's store and then the gateway's database.
func (g *Gateway) Close() {
	_ = g.store.Close()
	_ = g.db.Close()
}

// RegisterPlugin is the gateway's admin action, in-process.
func (g *Gateway) RegisterPlugin(ctx context.Context, name string, scopes ...string) (core.NewPlugin, error) {
	return g.Tokens.CreatePlugin(ctx, name, scopes)
}

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
//   - reports its metrics in the gateway's registry;
//   - does its own upkeep: Serve runs plugintoken's background work
//     (Server.Run deletes expired codes and tokens) beside the HTTP server,
//     and Close closes plugintoken's store before the gateway's database.
//
// It configures no admin authenticator: it mounts no admin route.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
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
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	g, err := New(filepath.Join("data", "gateway.db"), logger, core.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:8090")
	if err != nil {
		g.Close()
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := g.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}

// Gateway is the example gateway.
type Gateway struct {
	Echo     *echo.Echo
	Tokens   *server.Server
	Registry *prometheus.Registry
	db       *bolt.DB
	log      *slog.Logger
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

// New builds the gateway on its bbolt file at path. tokens are
// plugintoken's settings (lifetimes, sweep interval; zero means
// plugintoken's defaults): New sets their Store and Logger.
func New(path string, logger *slog.Logger, tokens core.Config) (*Gateway, error) {
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
	g := &Gateway{Echo: echo.New(), Registry: prometheus.NewRegistry(), db: db, log: logger}
	tokens.Store, tokens.Logger = st, logger
	// No admin route is mounted, so no admin authenticator is needed.
	g.Tokens, err = server.New(server.Config{Config: tokens, Metrics: g.Registry})
	if err != nil {
		_ = st.Close()
		_ = db.Close()
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

// Serve serves the gateway on ln, and runs plugintoken's background work
// beside it, until ctx is done; then it drains requests and closes
// everything (Close).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	defer g.Close()
	srv := &http.Server{Handler: g.Echo, ReadHeaderTimeout: 5 * time.Second}
	// plugintoken's upkeep: expired codes, tokens and tombstones are
	// deleted every sweep interval until ctx is done.
	go func() {
		if err := g.Tokens.Run(ctx); err != nil {
			g.log.Error("plugintoken's background work stopped", "err", err)
		}
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(shutdown))
}

// Close stops plugintoken's background work and closes its store
// (Tokens.Close, which never closes the gateway's database), then the
// gateway's own database.
func (g *Gateway) Close() {
	_ = g.Tokens.Close()
	_ = g.db.Close()
}

// RegisterPlugin is the gateway's admin action, in-process.
func (g *Gateway) RegisterPlugin(ctx context.Context, name string, scopes ...string) (core.NewPlugin, error) {
	return g.Tokens.CreatePlugin(ctx, name, scopes)
}

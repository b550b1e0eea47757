package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// strictBinder is a host's binder that refuses unknown fields and answers
// 422 for anything it does not like.
type strictBinder struct{}

func (strictBinder) Bind(v any, c echo.Context) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	return nil
}

// refusingValidator is a host's validator that refuses everything.
type refusingValidator struct{}

func (refusingValidator) Validate(any) error {
	return echo.NewHTTPError(http.StatusUnprocessableEntity, "host validator says no")
}

// host is a gateway as its author would write it: Recover, RequestID, its
// own logger, CORS, error handler, strict binder and validator, a
// forwarded-for IP extractor, its own Prometheus registry; plugintoken
// mounted under /auth.
type host struct {
	e   *echo.Echo
	srv *server.Server
	db  *boltstore.DB
	reg *prometheus.Registry
	ts  *httptest.Server
	g   *echo.Group
}

const hostAdmin = "host-admin-session-0123456789-abcdefghij"

func newHost(t *testing.T, prefix string, options ...func(*server.Config)) *host {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "plugintoken.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := &host{db: db, reg: prometheus.NewRegistry(), e: echo.New()}
	h.e.Use(middleware.Recover(), middleware.RequestID(), middleware.CORS())
	h.e.Binder, h.e.Validator = strictBinder{}, refusingValidator{}
	h.e.IPExtractor = echo.ExtractIPFromXFFHeader()
	h.e.HTTPErrorHandler = func(err error, c echo.Context) { _ = c.String(418, "host error page") }
	cfg := server.Config{
		Config:  core.Config{Store: db, Logger: slog.New(slog.DiscardHandler)},
		Metrics: h.reg,
		Admin: func(_ *http.Request, bearer string) (string, error) {
			if bearer != hostAdmin {
				return "", server.ErrUnauthorized
			}
			return "alice", nil
		},
	}
	for _, o := range options {
		o(&cfg)
	}
	h.srv, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h.g, err = h.srv.Mount(h.e, prefix); err != nil {
		t.Fatal(err)
	}
	h.ts = httptest.NewServer(h.e)
	t.Cleanup(h.ts.Close)
	return h
}

func (h *host) do(t *testing.T, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestEmbeddedIgnoresHostBinding: the host's strict binder and validator
// never reach plugintoken's handlers. Registration works, and Teable's real
// token request (it carries a plugin's logo) is accepted.
func TestEmbeddedIgnoresHostBinding(t *testing.T) {
	h := newHost(t, "/auth")
	status, body := h.do(t, "POST", "/auth/plugin", `{"name":"chart","scopes":["table|read"]}`, "Authorization", "Bearer "+hostAdmin)
	if status != http.StatusCreated {
		t.Fatalf("POST /auth/plugin under a strict host binder: %d %s", status, body)
	}
	var p struct{ ID, Secret string }
	_ = json.Unmarshal([]byte(body), &p)
	status, body = h.do(t, "POST", "/auth/plugin/"+p.ID+"/authCode", `{"baseId":"bse1"}`, "Authorization", "Bearer "+hostAdmin)
	var code struct{ Code string }
	if status != 200 || json.Unmarshal([]byte(body), &code) != nil {
		t.Fatalf("auth code: %d %s", status, body)
	}
	teable := `{"baseId":"bse1","secret":"` + p.Secret + `","scopes":["table|read"],"authCode":"` + code.Code + `","logo":"https://example.com/logo.png"}`
	if status, body = h.do(t, "POST", "/auth/plugin/"+p.ID+"/token", teable); status != 200 {
		t.Fatalf("Teable's token request with a logo: %d %s", status, body)
	}
}

// TestEmbeddedKeepsUnknownStatuses: an error status no code names (the
// host's 422 from its own authenticator) keeps its status instead of
// becoming a 500.
func TestEmbeddedKeepsUnknownStatuses(t *testing.T) {
	h := newHost(t, "/auth", func(c *server.Config) {
		c.Admin = func(*http.Request, string) (string, error) {
			return "", echo.NewHTTPError(http.StatusUnprocessableEntity, "session expired")
		}
	})
	status, body := h.do(t, "POST", "/auth/plugin", `{"name":"chart"}`, "Authorization", "Bearer x")
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `"status":422`) {
		t.Errorf("host authenticator's 422: %d %s, want 422 in Teable's body", status, body)
	}
}

// TestEmbeddedRoutes: routes the host adds to the group Mount returns are
// the host's own; with the prefix "/", the host keeps its 404 page.
func TestEmbeddedRoutes(t *testing.T) {
	h := newHost(t, "/auth")
	h.g.GET("/whoami", func(c echo.Context) error { return c.String(200, "host route") })
	if status, body := h.do(t, "GET", "/auth/whoami", ""); status != 200 || body != "host route" {
		t.Errorf("host route on the returned group: %d %s", status, body)
	}
	root := newHost(t, "/")
	if status, body := root.do(t, "GET", "/no-such-page", ""); status != 418 || body != "host error page" {
		t.Errorf("unknown page with plugintoken mounted at /: %d %s, want the host's own 404 handling", status, body)
	}
	if status, _ := root.do(t, "POST", "/token/introspect", `{"token":"x"}`, "Authorization", "Bearer "+hostAdmin); status != 200 {
		t.Errorf("plugintoken route mounted at /: %d", status)
	}
}

// TestEmbeddedMetricsRegistry: a second Server on the host's registry, or a
// clash with a host metric, is an error from New, never a panic; the
// metrics show on the host's registry.
func TestEmbeddedMetricsRegistry(t *testing.T) {
	h := newHost(t, "/auth")
	_, err := server.New(server.Config{Config: core.Config{Store: h.db}, Admin: func(*http.Request, string) (string, error) { return "", nil }, Metrics: h.reg})
	if err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("second Server on one registry: err = %v", err)
	}
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "plugintoken_tokens_total", Help: "the host's own"}))
	if _, err := server.New(server.Config{Config: core.Config{Store: h.db}, Admin: func(*http.Request, string) (string, error) { return "", nil }, Metrics: clash}); err == nil {
		t.Error("a name clash with a host metric was accepted")
	}
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "plugintoken_tokens_total"
	}
	if !found {
		t.Error("plugintoken's metrics are not in the host's registry")
	}
}

// TestEmbeddedClientKeyIsPeer: with the host's X-Forwarded-For extractor,
// rotating the header must not reset the failure budget: the key is the
// TCP peer unless Config.ClientAddr says otherwise.
func TestEmbeddedClientKeyIsPeer(t *testing.T) {
	h := newHost(t, "/auth", func(c *server.Config) { c.MaxFailures, c.FailureWindow = 3, time.Hour })
	var last int
	for i := range 4 {
		last, _ = h.do(t, "POST", "/auth/token/introspect", `{"token":"x"}`, "Authorization", "Bearer wrong-session-xxxxxxxxxxxxxxxxxxxxxx",
			"X-Forwarded-For", "10.0.0."+string(rune('1'+i)))
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("4th failure with a new X-Forwarded-For each time: %d, want 429", last)
	}
}

// TestRunSweeperRefusesZero: a zero interval is an error, not a panic.
func TestRunSweeperRefusesZero(t *testing.T) {
	h := newHost(t, "/auth")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.srv.RunSweeper(ctx, 0); err == nil {
		t.Error("RunSweeper(ctx, 0) returned nil")
	}
	cancel()
	if err := h.srv.RunSweeper(ctx, time.Minute); err != nil {
		t.Errorf("RunSweeper after cancel: %v", err)
	}
}

// TestEmbeddedAdminSession: the admin check gets the request, so a
// gateway's own session (a cookie, no bearer) works for the admin routes.
func TestEmbeddedAdminSession(t *testing.T) {
	h := newHost(t, "/auth", func(c *server.Config) {
		c.Admin = func(r *http.Request, bearer string) (string, error) {
			if ck, err := r.Cookie("session"); err == nil && ck.Value == "alice-session" {
				return "alice", nil
			}
			return "", server.ErrUnauthorized
		}
	})
	if status, body := h.do(t, "POST", "/auth/plugin", `{"name":"chart"}`, "Cookie", "session=alice-session"); status != http.StatusCreated {
		t.Errorf("admin by session cookie: %d %s", status, body)
	}
	if status, _ := h.do(t, "POST", "/auth/plugin", `{"name":"chart"}`); status != http.StatusUnauthorized {
		t.Errorf("no session: %d, want 401", status)
	}
}

// TestEmbeddedMountSubsets: a gateway that issues codes in-process mounts
// only the plugin-facing routes; the admin routes are then not reachable at
// all. MountAdmin is the other half.
func TestEmbeddedMountSubsets(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := server.New(server.Config{Config: core.Config{Store: db, Logger: slog.New(slog.DiscardHandler)}, Admin: func(*http.Request, string) (string, error) { return "alice", nil }})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	if _, err := srv.MountPlugin(e, "/auth"); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	ctx := context.Background()
	p, _ := srv.CreatePlugin(ctx, "chart", []string{"table|read"})
	code, _ := srv.IssueAuthCode(ctx, p.ID, "bse1", "")
	post := func(path, body string) int {
		res, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := post("/auth/plugin/"+p.ID+"/token", `{"baseId":"bse1","secret":"`+p.Secret+`","scopes":["table|read"],"authCode":"`+code.Code+`"}`); got != 200 {
		t.Errorf("token route with MountPlugin: %d", got)
	}
	for _, path := range []string{"/auth/plugin", "/auth/plugin/" + p.ID + "/authCode", "/auth/token/introspect"} {
		if got := post(path, `{"name":"x","baseId":"b","token":"t"}`); got != http.StatusNotFound && got != http.StatusMethodNotAllowed {
			t.Errorf("admin route %s reachable with MountPlugin only: %d", path, got)
		}
	}
	admin := echo.New()
	if _, err := srv.MountAdmin(admin, "/auth"); err != nil {
		t.Fatal(err)
	}
	ats := httptest.NewServer(admin)
	defer ats.Close()
	res, err := http.Post(ats.URL+"/auth/token/introspect", "application/json", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("introspection with MountAdmin: %d", res.StatusCode)
	}
}

// TestMountHostMiddleware: the middleware a host gives Mount runs on each
// plugintoken route, every request, after plugintoken has checked the body
// (so it sees a body it can read) and before the validator and the handler
// (so it can refuse a request, or mark it, first); Echo's own semantics hold
// for it: it wraps the handler anew on each request. plugintoken's own
// middleware is composed once, at mount, and must keep its place around it.
func TestMountHostMiddleware(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := server.New(server.Config{Config: core.Config{Store: db, Logger: slog.New(slog.DiscardHandler)},
		Admin: func(*http.Request, string) (string, error) { return "alice", nil }})
	if err != nil {
		t.Fatal(err)
	}
	var wrapped, ran atomic.Int64
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	hostMW := func(next echo.HandlerFunc) echo.HandlerFunc {
		wrapped.Add(1)
		return func(c echo.Context) error {
			ran.Add(1)
			// plugintoken's headers are set and its body check done.
			note("host cache=" + c.Response().Header().Get("Cache-Control"))
			if c.Request().Header.Get("X-Deny") != "" {
				return echo.NewHTTPError(http.StatusForbidden, "denied by the host")
			}
			return next(c)
		}
	}
	e := echo.New()
	if _, err := srv.Mount(e, "/api", hostMW); err != nil {
		t.Fatal(err)
	}
	// Route names are the generated handlers', as Echo names routes.
	for _, r := range e.Routes() {
		if r.Path == "/api/token/introspect" && !strings.HasSuffix(r.Name, ".IntrospectToken-fm") {
			t.Errorf("introspection route named %q, want the generated handler's name", r.Name)
		}
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	h := &host{ts: ts}
	send := func(body string, header ...string) (int, string) {
		return h.do(t, "POST", "/api/token/introspect", body, append([]string{"Authorization", "Bearer x"}, header...)...)
	}
	before := wrapped.Load()
	for range 3 {
		if status, body := send(`{"token":"x"}`); status != 200 || !strings.Contains(body, `"active":false`) {
			t.Fatalf("introspection through the host's middleware: %d %s", status, body)
		}
	}
	if got := wrapped.Load() - before; got != 3 {
		t.Errorf("host middleware wrapped the handler %d times for 3 requests, want 3 (Echo's semantics)", got)
	}
	// Refused by the host: before the validator, with the host's status,
	// in Teable's error body.
	status, body := send(`{"token":"x"}`, "X-Deny", "1")
	if status != http.StatusForbidden || !strings.Contains(body, "denied by the host") {
		t.Errorf("host refusal: %d %s", status, body)
	}
	// A body plugintoken refuses (not one JSON value) never reaches it.
	n := ran.Load()
	if status, _ := send(`{"token":"x"} trailing`); status != http.StatusBadRequest {
		t.Errorf("bad body: %d, want 400", status)
	}
	if ran.Load() != n {
		t.Error("the host's middleware ran on a body plugintoken refused first")
	}
	// An invalid body by the document reaches it, then the validator refuses.
	if status, _ := send(`{"token":""}`); status != http.StatusBadRequest {
		t.Errorf("invalid body: %d, want 400", status)
	}
	if ran.Load() != n+1 {
		t.Error("the host's middleware did not run before the validator")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range order {
		if o != "host cache=no-store" {
			t.Fatalf("host middleware saw %q: plugintoken's no-store header not set before it", o)
		}
	}
}

// TestGatewayMiddlewareOptions: the realm, base binding to a route
// parameter, refusals through the host's error handler, and the same check
// as net/http middleware.
func TestGatewayMiddlewareOptions(t *testing.T) {
	h := newHost(t, "/auth")
	ctx := context.Background()
	p, _ := h.srv.CreatePlugin(ctx, "chart", []string{"table|read"})
	code, _ := h.srv.IssueAuthCode(ctx, p.ID, "bseA", "")
	pair, err := h.srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
	if err != nil {
		t.Fatal(err)
	}
	h.e.GET("/v1/bases/:base/records", func(c echo.Context) error {
		who, _ := server.PrincipalFrom(c)
		return c.String(200, who.BaseID)
	}, h.srv.RequireTokenWith(server.TokenCheck{Scopes: []string{"table|read"}, Realm: "gateway", BaseParam: "base", HostErrors: true}))
	bearer := "Bearer " + pair.AccessToken
	if status, body := h.do(t, "GET", "/v1/bases/bseA/records", "", "Authorization", bearer); status != 200 || body != "bseA" {
		t.Errorf("own base: %d %s", status, body)
	}
	if status, body := h.do(t, "GET", "/v1/bases/bseB/records", "", "Authorization", bearer); status != 418 || body != "host error page" {
		t.Errorf("another base: %d %s, want the host's error page (403 to its handler)", status, body)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /n/bases/{base}/records", h.srv.Middleware(server.TokenCheck{Scopes: []string{"table|read"}, BaseParam: "base", Realm: "gateway"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who, _ := server.PrincipalFromContext(r.Context())
			_, _ = io.WriteString(w, who.BaseID)
		})))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	get := func(path, authz string) (int, string, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header.Get("WWW-Authenticate")
	}
	if status, body, _ := get("/n/bases/bseA/records", bearer); status != 200 || body != "bseA" {
		t.Errorf("net/http own base: %d %s", status, body)
	}
	if status, body, _ := get("/n/bases/bseB/records", bearer); status != 403 || !strings.Contains(body, `"code":"restricted_resource"`) {
		t.Errorf("net/http another base: %d %s", status, body)
	}
	if status, _, challenge := get("/n/bases/bseA/records", ""); status != 401 || challenge != `Bearer realm="gateway"` {
		t.Errorf("net/http no credentials: %d %q, want 401 with the realm and no error code", status, challenge)
	}
	if status, _, challenge := get("/n/bases/bseA/records", "Bearer pta_unknown"); status != 401 || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("net/http unknown token: %d %q", status, challenge)
	}
}

// TestRefusalHeadersNotShared: a host middleware that edits a refusal's
// header values in place changes that response only, never the next
// refusal's.
func TestRefusalHeadersNotShared(t *testing.T) {
	h := newHarness(t)
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			hdr := c.Response().Header()
			if v := hdr["Www-Authenticate"]; len(v) > 0 {
				v[0] = "tampered"
			}
			if v := hdr["Content-Type"]; len(v) > 0 {
				v[0] = "text/tampered"
			}
			return err
		}
	})
	e.GET("/records", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, h.srv.RequireToken("record|read"))
	for i := range 2 {
		req := httptest.NewRequest(http.MethodGet, "/records", nil)
		req.Header.Set("Authorization", "Bearer pta_"+strings.Repeat("A", 64))
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if i == 1 {
			// The recorder snapshots headers at WriteHeader, before the
			// host edited them: the second answer shows what was set.
			if got := rec.Result().Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
				t.Errorf("second refusal's challenge = %q: the first response's edit reached it", got)
			}
			if got := rec.Result().Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("second refusal's content type = %q", got)
			}
		}
	}
}

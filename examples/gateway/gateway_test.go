package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
)

// newGateway starts the example gateway on a fresh database.
func newGateway(t *testing.T) (*Gateway, *httptest.Server) {
	t.Helper()
	g, err := New(filepath.Join(t.TempDir(), "gateway.db"), slog.New(slog.DiscardHandler), core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(g.Echo)
	t.Cleanup(func() { ts.Close(); g.Close() })
	return g, ts
}

func call(t *testing.T, ts *httptest.Server, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
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

// TestGatewayFlow is the embedding the README shows, end to end: a signed-in
// user authorises a plugin in-process, the plugin's backend exchanges the
// code through the mounted route (with Teable's logo field, past the
// gateway's strict binder), and the gateway's own route admits the token
// for its base only, with the user as subject.
func TestGatewayFlow(t *testing.T) {
	g, ts := newGateway(t)
	p, err := g.RegisterPlugin(context.Background(), "Chart", "record|read")
	if err != nil {
		t.Fatal(err)
	}
	status, body := call(t, ts, "POST", "/v1/plugins/"+p.ID+"/codes", `{"baseId":"bseA"}`, "Cookie", "session=alice")
	var code struct{ Code string }
	if status != 200 || json.Unmarshal([]byte(body), &code) != nil {
		t.Fatalf("code for a signed-in user: %d %s", status, body)
	}
	teable := `{"baseId":"bseA","secret":"` + p.Secret + `","scopes":["record|read"],"authCode":"` + code.Code + `","logo":"https://example.com/logo.png"}`
	status, body = call(t, ts, "POST", "/auth/plugin/"+p.ID+"/token", teable)
	var pair struct{ AccessToken string }
	if status != 200 || json.Unmarshal([]byte(body), &pair) != nil {
		t.Fatalf("Teable's token request through the gateway: %d %s", status, body)
	}
	bearer := "Bearer " + pair.AccessToken
	status, body = call(t, ts, "GET", "/v1/bases/bseA/records", "", "Authorization", bearer)
	if status != 200 || !strings.Contains(body, `"for":"alice"`) || !strings.Contains(body, `"base":"bseA"`) {
		t.Errorf("own route, own base: %d %s", status, body)
	}
	// Another base: refused, rendered by the gateway's own error handler.
	status, body = call(t, ts, "GET", "/v1/bases/bseB/records", "", "Authorization", bearer)
	if status != http.StatusForbidden || !strings.Contains(body, "gatewayError") {
		t.Errorf("another base: %d %s, want 403 from the gateway's handler", status, body)
	}
	status, _ = call(t, ts, "GET", "/v1/bases/bseA/records", "")
	if status != http.StatusUnauthorized {
		t.Errorf("no token: %d", status)
	}
}

// TestGatewayAdminRoutesAbsent: with MountPlugin only, plugintoken's admin
// routes are not reachable at all, session or not.
func TestGatewayAdminRoutesAbsent(t *testing.T) {
	_, ts := newGateway(t)
	for _, path := range []string{"/auth/plugin", "/auth/token/introspect", "/auth/admin/backup"} {
		status, _ := call(t, ts, "POST", path, `{}`, "Cookie", "session=admin")
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want it not mounted", path, status)
		}
	}
}

// TestGatewayMetrics: plugintoken's metrics are in the gateway's registry,
// on the gateway's own /metrics.
func TestGatewayMetrics(t *testing.T) {
	_, ts := newGateway(t)
	status, body := call(t, ts, "GET", "/metrics", "")
	if status != 200 || !strings.Contains(body, "plugintoken_tokens_total") {
		t.Errorf("gateway /metrics: %d, no plugintoken metrics", status)
	}
}

// TestGatewayLimiterIgnoresForwardedFor: the gateway trusts X-Forwarded-For
// for its own purposes; plugintoken's failure budget still keys on the TCP
// peer, so rotating the header does not reset it.
func TestGatewayLimiterIgnoresForwardedFor(t *testing.T) {
	g, ts := newGateway(t)
	p, _ := g.RegisterPlugin(context.Background(), "Chart", "record|read")
	var last int
	for i := range 12 {
		last, _ = call(t, ts, "POST", "/auth/plugin/"+p.ID+"/refreshToken", `{"refreshToken":"ptr_x","secret":"wrong"}`,
			"X-Forwarded-For", "10.1.1."+string(rune('0'+i%10)))
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("11th failure with rotating X-Forwarded-For: %d, want 429", last)
	}
}

// TestGatewayPrincipalIsACopy: a gateway handler that edits the principal's
// scopes (an ordinary bug) does not widen what the token grants.
func TestGatewayPrincipalIsACopy(t *testing.T) {
	g, ts := newGateway(t)
	g.Echo.GET("/v1/bases/:base/buggy", func(c echo.Context) error {
		who, _ := server.PrincipalFrom(c)
		who.Scopes[0] = "record|delete"
		return c.NoContent(http.StatusNoContent)
	}, g.Tokens.RequireTokenWith(server.TokenCheck{Scopes: []string{"record|read"}, BaseParam: "base"}))
	g.Echo.GET("/v1/bases/:base/delete", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) },
		g.Tokens.RequireTokenWith(server.TokenCheck{Scopes: []string{"record|delete"}, BaseParam: "base"}))
	ctx := context.Background()
	p, _ := g.RegisterPlugin(ctx, "Chart", "record|read", "record|delete")
	code, _ := g.Tokens.IssueAuthCode(ctx, p.ID, "bseA", "alice")
	pair, err := g.Tokens.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"record|read"}})
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + pair.AccessToken
	if status, _ := call(t, ts, "GET", "/v1/bases/bseA/buggy", "", "Authorization", bearer); status != http.StatusNoContent {
		t.Fatalf("buggy handler: %d", status)
	}
	if status, _ := call(t, ts, "GET", "/v1/bases/bseA/delete", "", "Authorization", bearer); status != http.StatusForbidden {
		t.Errorf("a record|read token passed record|delete after a handler edited its principal: %d", status)
	}
}

// TestGatewayNoPanics: what used to panic is an error or works: a sweeper
// with no interval, a second Server on the gateway's registry, mounting at
// "/" (the gateway keeps its own 404 page) and the gateway's own routes on
// the group Mount returns.
func TestGatewayNoPanics(t *testing.T) {
	g, _ := newGateway(t)
	if err := g.Tokens.RunSweeper(context.Background(), 0); err == nil {
		t.Error("RunSweeper(ctx, 0) returned nil")
	}
	if _, err := server.New(server.Config{Config: core.Config{Store: g.Tokens.Store()}, Metrics: g.Registry,
		Admin: func(*http.Request, string) (string, error) { return "", server.ErrUnauthorized }}); err == nil {
		t.Error("a second Server on the gateway's registry was accepted")
	}
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) { _ = c.String(http.StatusTeapot, "gateway 404 page") }
	grp, err := g.Tokens.MountPlugin(e, "/")
	if err != nil {
		t.Fatal(err)
	}
	grp.GET("/hello", func(c echo.Context) error { return c.String(http.StatusOK, "gateway route") })
	ts := httptest.NewServer(e)
	defer ts.Close()
	if status, body := call(t, ts, "GET", "/nowhere", ""); status != http.StatusTeapot || body != "gateway 404 page" {
		t.Errorf("unknown page with plugintoken at /: %d %s", status, body)
	}
	if status, body := call(t, ts, "GET", "/hello", ""); status != http.StatusOK || body != "gateway route" {
		t.Errorf("the gateway's route on the returned group: %d %s", status, body)
	}
}

// TestGatewayWritesNoAuthenticator: the example mounts only the plugin
// routes and configures no admin authenticator; mounting an admin route
// on it is an error, not a route anyone could use.
func TestGatewayWritesNoAuthenticator(t *testing.T) {
	g, _ := newGateway(t)
	if _, err := g.Tokens.MountAdmin(g.Echo, "/admin"); err == nil {
		t.Error("MountAdmin with no Config.Admin returned no error")
	}
}

// TestGatewayModuleGraph: what the gateway links and requires holds no etcd,
// gRPC, OpenTelemetry, generator, oasdiff or Swagger UI page.
func TestGatewayModuleGraph(t *testing.T) {
	for _, args := range [][]string{{"list", "-deps", "."}, {"list", "-m", "all"}} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
		for _, bad := range []string{"go.etcd.io/etcd", "google.golang.org/grpc", "go.opentelemetry.io", "oapi-codegen/v2", "oasdiff/oasdiff", "plugintoken/server/docs"} {
			if strings.Contains(string(out), bad) {
				t.Errorf("go %v lists %s", args, bad)
			}
		}
	}
}

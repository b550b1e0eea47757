package main

// These tests hold plugintoken to what a gateway meets after its first day,
// from outside: this module imports the library as any gateway would (its
// own go.mod, with a replace), keeps plugintoken's buckets in its own bbolt
// file next to a bucket of its own, and speaks real HTTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// hostSecret is a value of the host's own bucket: it must never leave
// through plugintoken.
const hostSecret = "host-only-value-7f3a9c"

const adminBearer = "host-admin-Vq8Lr3Xz6Tn1Wk4Hs9Pd2Jf7Gc5Mb0Ye"

// host is a gateway built the way the README shows, on one bbolt file that
// it shares with plugintoken.
type host struct {
	db       *bolt.DB
	tokens   *server.Server
	echo     *echo.Echo
	registry *prometheus.Registry
	ts       *httptest.Server
}

// newHost opens a bbolt file with a bucket of the host's own, keeps
// plugintoken's buckets in it, and builds a server with cfg (Store, Logger
// and Metrics are set here).
func newHost(t *testing.T, cfg server.Config) *host {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "host.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("accounts"))
		if err != nil {
			return err
		}
		return b.Put([]byte("alice"), []byte(hostSecret))
	}); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.OpenDB(db, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &host{db: db, echo: echo.New(), registry: prometheus.NewRegistry()}
	cfg.Store, cfg.Logger, cfg.Metrics = st, slog.New(slog.DiscardHandler), h.registry
	if h.tokens, err = server.New(cfg); err != nil {
		t.Fatal(err)
	}
	h.ts = httptest.NewServer(h.echo)
	t.Cleanup(func() {
		h.ts.Close()
		if err := h.tokens.Close(); err != nil {
			t.Error(err)
		}
		// Close left the host's database open: the host closes it.
		if err := db.View(func(*bolt.Tx) error { return nil }); err != nil {
			t.Errorf("the host's database after Tokens.Close: %v", err)
		}
		_ = db.Close()
	})
	return h
}

func staticAdmin(t *testing.T) server.AdminAuthenticator {
	t.Helper()
	a, err := server.StaticTokens(adminBearer)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// token registers a plugin and returns an access token for bseA with scopes.
func (h *host) token(t *testing.T, scopes ...string) string {
	t.Helper()
	ctx := context.Background()
	p, err := h.tokens.CreatePlugin(ctx, "Chart", scopes)
	if err != nil {
		t.Fatal(err)
	}
	code, err := h.tokens.IssueAuthCode(ctx, p.ID, "bseA", "alice")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := h.tokens.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: code.Code, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return pair.AccessToken
}

// records counts plugintoken's codes and token pairs in the shared file.
func records(t *testing.T, db *bolt.DB) (codes, grants int) {
	t.Helper()
	if err := db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket([]byte("plugintoken"))
		codes = root.Bucket([]byte("codes")).Stats().KeyN
		grants = root.Bucket([]byte("grants")).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return codes, grants
}

// TestGatewayUpkeep runs the example gateway as its main does (Serve, which
// starts plugintoken's background work) with short lifetimes: the codes
// and tokens of a day's traffic (exchanges, a refresh, a revocation, a
// replay) are deleted once they expire, and the record count returns to
// its floor, with no upkeep written by the gateway.
func TestGatewayUpkeep(t *testing.T) {
	g, err := New(filepath.Join(t.TempDir(), "gateway.db"), slog.New(slog.DiscardHandler), core.Config{
		AuthCodeTTL: time.Second, AccessTokenTTL: time.Second, RefreshTokenTTL: 2 * time.Second,
		SweepInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	ts := &httptest.Server{URL: "http://" + ln.Addr().String()}

	p, err := g.RegisterPlugin(ctx, "Chart", "record|read")
	if err != nil {
		t.Fatal(err)
	}
	var refresh, replayed string
	for i := range 20 {
		status, body := call(t, ts, "POST", "/v1/plugins/"+p.ID+"/codes", `{"baseId":"bseA"}`, "Cookie", "session=alice")
		var code struct{ Code string }
		if status != 200 || json.Unmarshal([]byte(body), &code) != nil {
			t.Fatalf("code: %d %s", status, body)
		}
		if i%4 == 3 {
			continue // never redeemed
		}
		req := `{"baseId":"bseA","secret":"` + p.Secret + `","scopes":["record|read"],"authCode":"` + code.Code + `"}`
		status, body = call(t, ts, "POST", "/auth/plugin/"+p.ID+"/token", req)
		var pair struct{ RefreshToken string }
		if status != 200 || json.Unmarshal([]byte(body), &pair) != nil {
			t.Fatalf("exchange: %d %s", status, body)
		}
		refresh, replayed = pair.RefreshToken, req
	}
	if status, body := call(t, ts, "POST", "/auth/plugin/"+p.ID+"/refreshToken",
		`{"refreshToken":"`+refresh+`","secret":"`+p.Secret+`"}`); status != 200 {
		t.Fatalf("refresh: %d %s", status, body)
	}
	if status, _ := call(t, ts, "POST", "/auth/plugin/"+p.ID+"/token", replayed); status != http.StatusBadRequest {
		t.Fatalf("replay: %d", status)
	}
	codes, grants := records(t, g.db)
	if codes == 0 || grants == 0 {
		t.Fatalf("after the traffic: %d codes, %d token pairs; want some of each", codes, grants)
	}
	// Everything expires within 2 s of the last write, and is swept every
	// 100 ms. The bound is generous for a busy machine; what matters is
	// that the count reaches its floor at all.
	deadline := time.Now().Add(time.Minute)
	for codes+grants > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the traffic, %d codes and %d token pairs are still stored: nothing swept them", codes, grants)
		}
		time.Sleep(100 * time.Millisecond)
		codes, grants = records(t, g.db)
	}
	if _, err := g.Tokens.Plugin(ctx, p.ID); err != nil {
		t.Errorf("the plugin itself is not upkeep's to delete: %v", err)
	}
}

// TestHostBackupHoldsOnlyPlugintoken: on a file shared with the host, the
// backup route streams plugintoken's data alone, as a database of its own
// that boltstore.Open accepts and serves the same tokens from; the host's
// bucket and values never come back.
func TestHostBackupHoldsOnlyPlugintoken(t *testing.T) {
	h := newHost(t, server.Config{Admin: staticAdmin(t)})
	if _, err := h.tokens.MountBackup(h.echo, "/admin"); err != nil {
		t.Fatal(err)
	}
	access := h.token(t, "record|read")
	req, _ := http.NewRequest("GET", h.ts.URL+"/admin/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+adminBearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	copyBytes, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ContentLength != int64(len(copyBytes)) {
		t.Fatalf("backup: %d, %d bytes of a declared %d", res.StatusCode, len(copyBytes), res.ContentLength)
	}
	if bytes.Contains(copyBytes, []byte(hostSecret)) || bytes.Contains(copyBytes, []byte("accounts")) {
		t.Fatal("the backup holds the host's own bucket or value")
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, copyBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	_ = raw.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error { top = append(top, string(name)); return nil })
	})
	_ = raw.Close()
	if slices.Sort(top); !slices.Equal(top, []string{"codes", "expiry", "grants", "meta", "plugins"}) {
		t.Errorf("the backup's top-level buckets = %v, want plugintoken's own, at the top", top)
	}
	restored, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatalf("boltstore.Open on the backup: %v", err)
	}
	srv, err := server.New(server.Config{Config: core.Config{Store: restored}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if p, err := srv.Authenticate(context.Background(), access); err != nil || p.BaseID != "bseA" {
		t.Errorf("the token, served from the restored backup: %+v, %v", p, err)
	}
}

// TestHostBackupMountedOnRequest: neither Mount nor MountAdmin mounts the
// backup; MountBackup does, and needs an admin authenticator.
func TestHostBackupMountedOnRequest(t *testing.T) {
	h := newHost(t, server.Config{Admin: staticAdmin(t)})
	if _, err := h.tokens.Mount(h.echo, "/all"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.tokens.MountAdmin(h.echo, "/admin"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/all/admin/backup", "/admin/admin/backup"} {
		if status, _ := call(t, h.ts, "GET", path, "", "Authorization", "Bearer "+adminBearer); status != http.StatusNotFound {
			t.Errorf("%s without MountBackup: %d, want 404", path, status)
		}
	}
	if _, err := h.tokens.MountBackup(h.echo, "/ops"); err != nil {
		t.Fatal(err)
	}
	if status, _ := call(t, h.ts, "GET", "/ops/admin/backup", "", "Authorization", "Bearer "+adminBearer); status != http.StatusOK {
		t.Errorf("after MountBackup: %d", status)
	}
	if status, _ := call(t, h.ts, "GET", "/ops/admin/backup", ""); status != http.StatusUnauthorized {
		t.Errorf("MountBackup without a bearer: %d, want 401", status)
	}
}

// TestHostWithoutAdmin: a host that mounts only the plugin routes writes no
// authenticator. The plugin routes work, an admin's bearer is never
// accepted (revocation falls to 401, no panic), and every way of mounting
// an admin route says what is missing.
func TestHostWithoutAdmin(t *testing.T) {
	h := newHost(t, server.Config{})
	if _, err := h.tokens.MountPlugin(h.echo, "/auth"); err != nil {
		t.Fatal(err)
	}
	access := h.token(t, "record|read")
	status, body := call(t, h.ts, "POST", "/auth/token/revoke", `{"token":"`+access+`"}`, "Authorization", "Bearer "+adminBearer)
	if status != http.StatusUnauthorized {
		t.Errorf("revocation with a bearer and no authenticator: %d %s, want 401", status, body)
	}
	if _, err := h.tokens.Authenticate(context.Background(), access); err != nil {
		t.Errorf("the token after a refused admin revocation: %v", err)
	}
	for name, mount := range map[string]func(*echo.Echo, string, ...echo.MiddlewareFunc) (*echo.Group, error){
		"Mount": h.tokens.Mount, "MountAdmin": h.tokens.MountAdmin, "MountBackup": h.tokens.MountBackup,
	} {
		if _, err := mount(echo.New(), "/x"); err == nil || !strings.Contains(err.Error(), "Config.Admin") {
			t.Errorf("%s with no Config.Admin: %v, want an error naming Config.Admin", name, err)
		}
	}
	st, _ := boltstore.OpenDB(h.db, boltstore.Options{Bucket: "other"})
	if _, err := server.New(server.Config{Config: core.Config{Store: st}, TokenRequiresBearer: true}); err == nil {
		t.Error("TokenRequiresBearer with no Config.Admin was accepted")
	}
}

// TestHostAdminBySession: mounted, the admin half takes the host's session
// cookie (the check gets the request), and an *echo.HTTPError from the
// check keeps its status.
func TestHostAdminBySession(t *testing.T) {
	h := newHost(t, server.Config{Admin: func(r *http.Request, _ string) (string, error) {
		user, ok := sessionUser(r)
		switch {
		case ok && user == "expired":
			return "", echo.NewHTTPError(http.StatusUnprocessableEntity, "session expired")
		case ok && user == "admin":
			return user, nil
		}
		return "", server.ErrUnauthorized
	}})
	if _, err := h.tokens.MountAdmin(h.echo, "/admin"); err != nil {
		t.Fatal(err)
	}
	if status, body := call(t, h.ts, "POST", "/admin/plugin", `{"name":"Chart"}`, "Cookie", "session=admin"); status != http.StatusCreated {
		t.Errorf("admin by session: %d %s", status, body)
	}
	if status, _ := call(t, h.ts, "POST", "/admin/plugin", `{"name":"Chart"}`, "Cookie", "session=alice"); status != http.StatusUnauthorized {
		t.Errorf("a non-admin session: %d, want 401", status)
	}
	if status, body := call(t, h.ts, "POST", "/admin/plugin", `{"name":"Chart"}`, "Cookie", "session=expired"); status != http.StatusUnprocessableEntity {
		t.Errorf("the host's own 422 from its check: %d %s, want 422 (not 500)", status, body)
	}
}

// TestHostNetHTTPBase: net/http's Middleware with BaseParam works on the
// handler of a ServeMux pattern; wrapped around the whole mux (where
// r.PathValue is empty) it answers 500 for every request instead of
// refusing a good token as another base's; Base takes the base from the
// request wherever the middleware sits (as chi or gorilla/mux need).
func TestHostNetHTTPBase(t *testing.T) {
	h := newHost(t, server.Config{})
	access := h.token(t, "record|read")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := server.PrincipalFromContext(r.Context())
		_, _ = io.WriteString(w, p.BaseID)
	})
	fromPath := func(r *http.Request) string { // what chi.URLParam(r, "base") gives
		rest, _ := strings.CutPrefix(r.URL.Path, "/v1/bases/")
		base, _, _ := strings.Cut(rest, "/")
		return base
	}
	inner := http.NewServeMux()
	inner.Handle("GET /v1/bases/{base}/records", h.tokens.Middleware(server.TokenCheck{BaseParam: "base"})(ok))
	plain := http.NewServeMux()
	plain.Handle("GET /v1/bases/{base}/records", ok)
	for _, tc := range []struct {
		name    string
		handler http.Handler
		path    string
		want    int
	}{
		{"OnThePattern", inner, "/v1/bases/bseA/records", 200},
		{"OnThePatternOtherBase", inner, "/v1/bases/bseB/records", 403},
		{"AroundTheMuxBaseParam", h.tokens.Middleware(server.TokenCheck{BaseParam: "base"})(plain), "/v1/bases/bseA/records", 500},
		{"AroundTheMuxBase", h.tokens.Middleware(server.TokenCheck{Base: fromPath})(plain), "/v1/bases/bseA/records", 200},
		{"AroundTheMuxBaseOtherBase", h.tokens.Middleware(server.TokenCheck{Base: fromPath})(plain), "/v1/bases/bseB/records", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Header.Set("Authorization", "Bearer "+access)
			w := httptest.NewRecorder()
			tc.handler.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	// Echo behaves alike: a BaseParam the route lacks is a 500, Base works.
	e := h.echo
	e.GET("/e/bases/:base/a", func(c echo.Context) error { return c.NoContent(204) }, h.tokens.RequireTokenWith(server.TokenCheck{BaseParam: "nope"}))
	e.GET("/e/bases/:base/b", func(c echo.Context) error { return c.NoContent(204) }, h.tokens.RequireTokenWith(server.TokenCheck{
		Base: func(r *http.Request) string { return strings.Split(r.URL.Path, "/")[3] }}))
	if status, _ := call(t, h.ts, "GET", "/e/bases/bseA/a", "", "Authorization", "Bearer "+access); status != 500 {
		t.Errorf("Echo, BaseParam not on the route: %d, want 500", status)
	}
	if status, _ := call(t, h.ts, "GET", "/e/bases/bseA/b", "", "Authorization", "Bearer "+access); status != 204 {
		t.Errorf("Echo, Base: %d, want 204", status)
	}
}

// TestHostMiddlewareConventions: a Skipper lets requests through; each kind
// of refusal reaches the host's error handler (Echo) and OnError (net/http)
// as an error errors.Is tells apart; and refusals are counted by reason in
// the host's registry, with no other label values.
func TestHostMiddlewareConventions(t *testing.T) {
	h := newHost(t, server.Config{})
	access := h.token(t, "record|read")
	var gotEcho, gotHTTP error
	h.echo.HTTPErrorHandler = func(err error, c echo.Context) {
		gotEcho = err
		_ = c.NoContent(599)
	}
	check := server.TokenCheck{Scopes: []string{"record|read"}, BaseParam: "base", HostErrors: true,
		Skipper: func(r *http.Request) bool { return r.URL.Query().Get("public") == "1" },
		OnError: func(w http.ResponseWriter, _ *http.Request, _ int, err error) { gotHTTP = err; w.WriteHeader(599) },
	}
	h.echo.GET("/v1/bases/:base/records", func(c echo.Context) error { return c.NoContent(204) }, h.tokens.RequireTokenWith(check))
	scoped := check
	scoped.Scopes = []string{"record|delete"}
	h.echo.GET("/v1/bases/:base/delete", func(c echo.Context) error { return c.NoContent(204) }, h.tokens.RequireTokenWith(scoped))
	mux := http.NewServeMux()
	mux.Handle("GET /v1/bases/{base}/records", h.tokens.Middleware(check)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })))
	mux.Handle("GET /v1/bases/{base}/delete", h.tokens.Middleware(scoped)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })))
	std := httptest.NewServer(mux)
	defer std.Close()

	for _, tc := range []struct {
		name, path, auth string
		want             error
	}{
		{"ErrNoToken", "/v1/bases/bseA/records", "", server.ErrNoToken},
		{"ErrInvalidToken", "/v1/bases/bseA/records", "Bearer pta_made.up", server.ErrInvalidToken},
		{"ErrInsufficientScope", "/v1/bases/bseA/delete", "Bearer " + access, server.ErrInsufficientScope},
		{"ErrOtherBase", "/v1/bases/bseB/records", "Bearer " + access, server.ErrOtherBase},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotEcho, gotHTTP = nil, nil
			call(t, h.ts, "GET", tc.path, "", "Authorization", tc.auth)
			call(t, std, "GET", tc.path, "", "Authorization", tc.auth)
			for adapter, got := range map[string]error{"Echo": gotEcho, "net/http": gotHTTP} {
				if !errors.Is(got, tc.want) {
					t.Errorf("%s: the host got %v, want errors.Is(err, server.%s)", adapter, got, tc.name)
				}
				for _, other := range []error{server.ErrNoToken, server.ErrInvalidToken, server.ErrInsufficientScope, server.ErrOtherBase} {
					if other != tc.want && errors.Is(got, other) {
						t.Errorf("%s: %v is also %v", adapter, got, other)
					}
				}
			}
		})
	}
	for _, ts := range []*httptest.Server{h.ts, std} {
		if status, _ := call(t, ts, "GET", "/v1/bases/bseA/records?public=1", ""); status != 204 {
			t.Errorf("skipped request: %d, want 204", status)
		}
		if status, _ := call(t, ts, "GET", "/v1/bases/bseA/records", "", "Authorization", "Bearer "+access); status != 204 {
			t.Errorf("good token: %d, want 204", status)
		}
	}

	families, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "plugintoken_gateway_refusals_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"no_token": 2, "invalid_token": 2, "insufficient_scope": 2, "other_base": 2, "error": 0}
	if len(counts) != len(want) {
		t.Errorf("refusal series = %v, want exactly %v", counts, want)
	}
	for reason, n := range want {
		if counts[reason] != n {
			t.Errorf("refusals{reason=%q} = %v, want %v", reason, counts[reason], n)
		}
	}
}

// TestHostRenderError: plugintoken's mounted routes and its middleware
// answer in Teable's body by default, and in the host's own dialect with
// Config.RenderError.
func TestHostRenderError(t *testing.T) {
	render := func(c echo.Context, status int, err *core.Error) error {
		return c.JSON(status, map[string]any{"hostError": err.Message, "kind": string(err.Code)})
	}
	for _, tc := range []struct {
		name   string
		render func(echo.Context, int, *core.Error) error
		want   string
	}{
		{"Default", nil, `"code":"validation_error"`},
		{"RenderError", render, `"hostError":"Invalid secret"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, server.Config{RenderError: tc.render})
			if _, err := h.tokens.MountPlugin(h.echo, "/auth"); err != nil {
				t.Fatal(err)
			}
			p, _ := h.tokens.CreatePlugin(context.Background(), "Chart", []string{"record|read"})
			status, body := call(t, h.ts, "POST", "/auth/plugin/"+p.ID+"/refreshToken", `{"refreshToken":"ptr_x","secret":"wrong"}`)
			if status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("refused refresh: %d %s, want 400 with %s", status, body, tc.want)
			}
			h.echo.GET("/v1/x", func(c echo.Context) error { return c.NoContent(204) }, h.tokens.RequireToken())
			status, body = call(t, h.ts, "GET", "/v1/x", "")
			if tc.render != nil && (status != 401 || !strings.Contains(body, `"hostError"`)) {
				t.Errorf("middleware refusal with RenderError: %d %s", status, body)
			}
		})
	}
}

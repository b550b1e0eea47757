package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/server/docs"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

const adminToken = "test-admin-token-0123456789-abcdefgh"

var ctx = context.Background()

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// harness is a real server (real bbolt file, real HTTP stack) and generated
// clients, one anonymous and one with the admin bearer.
type harness struct {
	t      testing.TB
	srv    *server.Server
	db     *boltstore.DB
	clock  *clock
	logs   *syncBuffer
	url    string
	client *gen.ClientWithResponses
	admin  *gen.ClientWithResponses
}

func newHarness(t testing.TB, options ...func(*server.Config)) *harness {
	t.Helper()
	return newHarnessAt(t, filepath.Join(t.TempDir(), "plugintoken.db"), options...)
}

// newHarnessAt is newHarness with the database file at path.
func newHarnessAt(t testing.TB, path string, options ...func(*server.Config)) *harness {
	t.Helper()
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := &harness{t: t, db: db, clock: &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	auth, err := server.StaticTokens(adminToken)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Config: core.Config{
			Store:  db,
			Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
			Now:    h.clock.Now,
		},
		Admin: auth,
	}
	for _, o := range options {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	e, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	if err := docs.Mount(e, "/docs", "/api/openapi.json"); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	h.url = ts.URL
	h.client = mustClient(t, ts.URL+"/api")
	h.admin = mustClient(t, ts.URL+"/api", gen.WithRequestEditorFn(bearer(adminToken)))
	return h
}

func mustClient(t testing.TB, url string, opts ...gen.ClientOption) *gen.ClientWithResponses {
	t.Helper()
	c, err := gen.NewClientWithResponses(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bearer(token string) gen.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// createPlugin registers a plugin (with the given scopes, or the default
// vocabulary when none are given) and returns it with its secret.
func (h *harness) createPlugin(scopes ...string) gen.PluginWithSecret {
	h.t.Helper()
	body := gen.CreatePluginRequest{Name: "Chart"}
	if scopes != nil {
		body.Scopes = &scopes
	}
	res, err := h.admin.CreatePluginWithResponse(ctx, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if res.JSON201 == nil {
		h.t.Fatalf("create plugin: %d %s", res.StatusCode(), res.Body)
	}
	return *res.JSON201
}

// authCode issues a code for the plugin and base.
func (h *harness) authCode(pluginID, baseID string) string {
	h.t.Helper()
	res, err := h.admin.CreateAuthCodeWithResponse(ctx, pluginID, gen.AuthCodeRequest{BaseID: baseID})
	if err != nil {
		h.t.Fatal(err)
	}
	if res.JSON200 == nil {
		h.t.Fatalf("auth code: %d %s", res.StatusCode(), res.Body)
	}
	return res.JSON200.Code
}

// exchange POSTs a raw token request body and returns the response.
func (h *harness) exchange(pluginID, body string) *gen.PostPluginTokenResponse {
	h.t.Helper()
	res, err := h.client.PostPluginTokenWithBodyWithResponse(ctx, pluginID, "application/json", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// tokenRequest is a token request body as JSON.
func tokenRequest(baseID, secret, code string, scopes ...string) string {
	b, _ := json.Marshal(gen.PluginTokenRequest{BaseID: baseID, Secret: secret, AuthCode: code, Scopes: scopes})
	return string(b)
}

// do sends a raw request to the server.
func (h *harness) do(method, path, contentType, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return res, b
}

// checkError asserts that an answer is Teable's error body with the given
// status and code, and (when message is not empty) message.
func checkError(t *testing.T, status int, body []byte, wantStatus int, wantCode, wantMessage string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status = %d, want %d (body %s)", status, wantStatus, body)
	}
	var e gen.Error
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q is not {message, status, code}: %v", body, err)
	}
	if e.Status != wantStatus || e.Code != wantCode {
		t.Errorf("error body = %+v, want status %d code %s", e, wantStatus, wantCode)
	}
	if wantMessage != "" && e.Message != wantMessage {
		t.Errorf("message = %q, want %q", e.Message, wantMessage)
	}
	if e.Message == "" {
		t.Error("error message is empty")
	}
}

// checkNoStore asserts the caching headers of token responses.
func checkNoStore(t *testing.T, h http.Header) {
	t.Helper()
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := h.Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma = %q, want no-cache", got)
	}
}

// token exchanges a fresh code of the plugin for a token pair.
func (h *harness) token(p gen.PluginWithSecret, scopes ...string) gen.PluginTokenResponse {
	h.t.Helper()
	res := h.exchange(p.ID, tokenRequest("bse1", p.Secret, h.authCode(p.ID, "bse1"), scopes...))
	if res.JSON200 == nil {
		h.t.Fatalf("exchange: %d %s", res.StatusCode(), res.Body)
	}
	return *res.JSON200
}

// refresh rotates a refresh token and returns the raw answer.
func (h *harness) refresh(pluginID, secret, refreshToken string) *gen.RefreshPluginTokenResponse {
	h.t.Helper()
	res, err := h.client.RefreshPluginTokenWithResponse(ctx, pluginID, gen.RefreshTokenRequest{RefreshToken: refreshToken, Secret: secret})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// introspect returns the admin introspection of a token.
func (h *harness) introspect(token string) gen.Introspection {
	h.t.Helper()
	res, err := h.admin.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: token})
	if err != nil {
		h.t.Fatal(err)
	}
	if res.JSON200 == nil {
		h.t.Fatalf("introspect: %d %s", res.StatusCode(), res.Body)
	}
	return *res.JSON200
}

// checkActive asserts which of the given tokens introspect active.
func (h *harness) checkActive(want bool, tokens ...string) {
	h.t.Helper()
	for _, tok := range tokens {
		if got := h.introspect(tok).Active; got != want {
			h.t.Errorf("token %.8s…: active = %v, want %v", tok, got, want)
		}
	}
}

// on returns the harness reporting to t (a fuzz target's own *testing.T).
func (h *harness) on(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server"
)

// BenchmarkRequireToken measures the gateway middleware's in-process check
// of a live access token, apart from the HTTP stack (the echo context is
// reused, as echo itself pools them), and of an unknown well-formed token,
// which must cost no more: presenting made-up tokens is no lever on the
// gateway.
func BenchmarkRequireToken(b *testing.B) {
	h := newHarness(b)
	tok := h.token(h.createPlugin(), "table|read", "record|read")
	unknown := tok.AccessToken[:len(tok.AccessToken)-12] + "AAAAAAAAAAAA"
	for name, tc := range map[string]struct {
		token string
		want  int
	}{"Known": {tok.AccessToken, http.StatusOK}, "Unknown": {unknown, http.StatusUnauthorized},
		"UnknownKey": {"pta_" + strings.Repeat("A", len(tok.AccessToken)-4), http.StatusUnauthorized}} {
		b.Run(name, func(b *testing.B) {
			e := echo.New()
			mw := h.srv.RequireToken("record|read")(func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			req := httptest.NewRequest(http.MethodGet, "/records", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			w := &discard{h: http.Header{}}
			c := e.NewContext(req, w)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				c.Reset(req, w)
				if err := mw(c); err != nil || c.Response().Status != tc.want {
					b.Fatalf("middleware: %v %d, want %d", err, c.Response().Status, tc.want)
				}
			}
		})
	}
}

// BenchmarkExchangeRefused compares the cost of refusing an exchange for a
// wrong secret with refusing it for an unknown plugin: they should cost
// about the same, so that timing does not tell which plugins exist.
func BenchmarkExchangeRefused(b *testing.B) {
	h := newHarness(b, func(c *server.Config) { c.MaxFailures = -1 })
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	e, err := h.srv.Handler()
	if err != nil {
		b.Fatal(err)
	}
	for name, pluginID := range map[string]string{"WrongSecret": p.ID, "UnknownPlugin": "pluNoSuchPlugin0000"} {
		b.Run(name, func(b *testing.B) {
			body := tokenRequest("bse1", "wrong-secret-of-forty-characters-xxxxxx", code, "table|read")
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/api/plugin/"+pluginID+"/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusBadRequest && rec.Code != http.StatusNotFound {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// BenchmarkIntrospectHandler measures the whole introspection route in
// process (routing, validation, admin check, lookup, answer), without the
// network.
func BenchmarkIntrospectHandler(b *testing.B) {
	h := newHarness(b)
	tok := h.token(h.createPlugin(), "table|read")
	e, err := h.srv.Handler()
	if err != nil {
		b.Fatal(err)
	}
	body := `{"token":"` + tok.AccessToken + `"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/token/introspect", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// discard is a ResponseWriter that keeps nothing but its header map (reused,
// as net/http's server reuses nothing either but allocates no more than the
// middleware asks for): what the middleware costs, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

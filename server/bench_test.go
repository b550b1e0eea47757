package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// BenchmarkRequireToken measures the gateway middleware's in-process check
// of a live access token, apart from the HTTP stack: the echo context is
// reused, as echo itself pools them.
func BenchmarkRequireToken(b *testing.B) {
	h := newHarness(b)
	tok := h.token(h.createPlugin(), "table|read", "record|read")
	e := echo.New()
	mw := h.srv.RequireToken("record|read")(func(c echo.Context) error { return nil })
	req := httptest.NewRequest(http.MethodGet, "/records", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	rec := httptest.NewRecorder()
	c := e.NewContext(req, rec)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Reset(req, rec)
		if err := mw(c); err != nil || rec.Code != http.StatusOK {
			b.Fatalf("middleware refused: %v %d", err, rec.Code)
		}
	}
}

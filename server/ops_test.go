package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	big := `{"baseId":"bse1","secret":"` + strings.Repeat("x", 70<<10) + `","scopes":["table|read"],"authCode":"c"}`
	t.Run("ErrTooLargeByLength", func(t *testing.T) {
		res, body := h.do("POST", "/api/plugin/"+p.ID+"/token", "application/json", big)
		checkError(t, res.StatusCode, body, http.StatusRequestEntityTooLarge, "payload_too_large", "")
	})
	t.Run("ErrTooLargeChunked", func(t *testing.T) {
		// No Content-Length: the limit must hold while reading.
		req, _ := http.NewRequest("POST", h.url+"/api/plugin/"+p.ID+"/token", io.MultiReader(strings.NewReader(big)))
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		checkError(t, res.StatusCode, body, http.StatusRequestEntityTooLarge, "payload_too_large", "")
	})
	t.Run("ErrAdminTooLarge", func(t *testing.T) {
		res, body := h.do("POST", "/api/plugin", "application/json", `{"name":"`+strings.Repeat("n", 70<<10)+`"}`,
			"Authorization", "Bearer "+adminToken)
		checkError(t, res.StatusCode, body, http.StatusRequestEntityTooLarge, "payload_too_large", "")
	})
	for name, ct := range map[string]string{
		"ErrTextPlain": "text/plain",
		"ErrForm":      "application/x-www-form-urlencoded",
		"ErrNoType":    "",
	} {
		t.Run(name, func(t *testing.T) {
			res, body := h.do("POST", "/api/plugin/"+p.ID+"/token", ct, tokenRequest("bse1", p.Secret, "c", "table|read"))
			checkError(t, res.StatusCode, body, http.StatusUnsupportedMediaType, "unsupported_media_type", "")
		})
	}
	t.Run("JSONWithCharset", func(t *testing.T) {
		code := h.authCode(p.ID, "bse1")
		res, body := h.do("POST", "/api/plugin/"+p.ID+"/token", "application/json; charset=utf-8", tokenRequest("bse1", p.Secret, code, "table|read"))
		var tok gen.PluginTokenResponse
		if res.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil {
			t.Fatalf("status = %d %s", res.StatusCode, body)
		}
		h.checkActive(true, tok.AccessToken, tok.RefreshToken)
	})
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.MaxFailures, c.FailureWindow = 3, time.Minute })
	p, other := h.createPlugin(), h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	for range 3 {
		res := h.exchange(p.ID, tokenRequest("bse1", "wrong", code, "table|read"))
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "Invalid secret")
	}
	// The budget is spent: a wrong secret is now answered 429...
	res := h.exchange(p.ID, tokenRequest("bse1", "wrong", code, "table|read"))
	checkError(t, res.StatusCode(), res.Body, http.StatusTooManyRequests, "too_many_requests", "")
	checkNoStore(t, res.HTTPResponse.Header)
	retry, err := strconv.Atoi(res.HTTPResponse.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 20 {
		t.Errorf("Retry-After = %q, want about 20 s (one attempt refills every 20 s)", res.HTTPResponse.Header.Get("Retry-After"))
	}
	refresh := h.refresh(p.ID, p.Secret, "ptr_x")
	checkError(t, refresh.StatusCode(), refresh.Body, http.StatusTooManyRequests, "too_many_requests", "")

	// ...but the right secret with a good code is never refused for what
	// others sent from the same address (a shared proxy or NAT).
	if ok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read")); ok.StatusCode() != 200 {
		t.Errorf("correct credentials after the budget was spent: %d %s", ok.StatusCode(), ok.Body)
	}

	// Another plugin's caller is not affected.
	if tok := h.exchange(other.ID, tokenRequest("bse1", other.Secret, h.authCode(other.ID, "bse1"), "table|read")); tok.StatusCode() != 200 {
		t.Errorf("other plugin: %d %s", tok.StatusCode(), tok.Body)
	}

	// Once an attempt has refilled, a wrong secret gets its usual answer.
	h.clock.Add(time.Duration(retry) * time.Second)
	wrong := h.exchange(p.ID, tokenRequest("bse1", "wrong", h.authCode(p.ID, "bse1"), "table|read"))
	checkError(t, wrong.StatusCode(), wrong.Body, 400, "validation_error", "Invalid secret")

	t.Run("AdminBearer", func(t *testing.T) {
		for range 3 {
			res, body := h.do("GET", "/api/plugin/"+p.ID, "", "", "Authorization", "Bearer wrong-admin-token-xxxxxxxx")
			checkError(t, res.StatusCode, body, 401, "unauthorized", "")
		}
		res, body := h.do("GET", "/api/plugin/"+p.ID, "", "", "Authorization", "Bearer wrong-admin-token-xxxxxxxx")
		checkError(t, res.StatusCode, body, http.StatusTooManyRequests, "too_many_requests", "")
		if res.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		// The real admin behind the same address is not locked out.
		res, body = h.do("GET", "/api/plugin/"+p.ID, "", "", "Authorization", "Bearer "+adminToken)
		if res.StatusCode != 200 {
			t.Errorf("admin after others' failures: %d %s", res.StatusCode, body)
		}
	})
	if !strings.Contains(h.metricsText(), "plugintoken_rate_limited_total 3") {
		t.Errorf("rate-limited attempts not counted:\n%s", grepLines(h.metricsText(), "rate_limited"))
	}
}

// TestRateLimitBurstCountedExactly sends 50 simultaneous replays of one
// code against a budget of 10: exactly 10 get their own answer and 40 are
// refused with 429 (a check-then-spend limiter let 49 through).
func TestRateLimitBurstCountedExactly(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.MaxFailures, c.FailureWindow = 10, time.Hour })
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	if res := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read")); res.StatusCode() != 200 {
		t.Fatalf("first redemption: %d %s", res.StatusCode(), res.Body)
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read"))
			mu.Lock()
			counts[res.StatusCode()]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[400] != 10 || counts[429] != 40 {
		t.Fatalf("answers to 50 simultaneous replays with a budget of 10: %v, want 10×400 and 40×429", counts)
	}
}

// metricsText fetches /metrics.
func (h *harness) metricsText() string {
	h.t.Helper()
	res, body := h.do("GET", "/metrics", "", "")
	if res.StatusCode != 200 {
		h.t.Fatalf("/metrics: %d", res.StatusCode)
	}
	return string(body)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "table|read")
	h.refresh(p.ID, p.Secret, tok.RefreshToken)
	h.refresh(p.ID, p.Secret, tok.RefreshToken) // reuse
	_ = h.exchange(p.ID, "{")
	if err := h.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	m := h.metricsText()
	for _, want := range []string{
		`plugintoken_http_requests_total{method="POST",route="/api/plugin/:pluginId/token",status="200"} 1`,
		`plugintoken_http_requests_total{method="POST",route="/api/plugin/:pluginId/token",status="400"} 1`,
		`plugintoken_http_request_duration_seconds_bucket{method="POST",route="/api/plugin/:pluginId/token"`,
		`plugintoken_tokens_total{event="issued"} 1`,
		`plugintoken_tokens_total{event="refreshed"} 1`,
		`plugintoken_theft_detections_total{kind="refresh_token_reuse"} 1`,
		`plugintoken_theft_detections_total{kind="auth_code_replay"} 0`,
		`plugintoken_sweeps_total 1`,
		`plugintoken_database_size_bytes `,
		`go_goroutines `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReadyz(t *testing.T) {
	h := newHarness(t)
	if res, body := h.do("GET", "/readyz", "", ""); res.StatusCode != 200 {
		t.Errorf("readyz: %d %s", res.StatusCode, body)
	}
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	res, body := h.do("GET", "/readyz", "", "")
	checkError(t, res.StatusCode, body, http.StatusServiceUnavailable, "service_unavailable", "")
	if res, _ := h.do("GET", "/healthz", "", ""); res.StatusCode != 200 {
		t.Errorf("healthz while the database is closed: %d, want 200 (still serving)", res.StatusCode)
	}
}

func TestAuditLog(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "table|read")
	h.refresh(p.ID, p.Secret, tok.RefreshToken)
	h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: tok.AccessToken})
	h.admin.RegeneratePluginSecretWithResponse(ctx, p.ID)
	h.admin.DeletePluginWithResponse(ctx, p.ID)
	logs := h.logs.String()
	for _, want := range []string{
		`msg="plugin created" plugin=` + p.ID,
		`msg="token issued" plugin=` + p.ID + ` base=bse1`,
		`msg="token refreshed" plugin=` + p.ID + ` base=bse1`,
		`msg="token revoke requested"`,
		`msg="plugin secret regenerated" plugin=` + p.ID,
		`msg="plugin deleted" plugin=` + p.ID,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no audit line %q in\n%s", want, grepLines(logs, "audit=true"))
		}
	}
	for _, l := range strings.Split(grepLines(logs, `msg="plugin`), "\n") {
		if !strings.Contains(l, "by=admin:") {
			t.Errorf("admin audit line without the admin: %s", l)
		}
	}
	for _, secret := range []string{p.Secret, tok.AccessToken, tok.RefreshToken, adminToken} {
		if strings.Contains(logs, secret[len(secret)-20:]) {
			t.Error("a secret or token reached the log")
		}
	}
}

func TestBackup(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	tok := h.token(p, "table|read")
	revoked := h.token(p, "table|read")
	h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: revoked.RefreshToken})

	res, err := h.admin.GetBackupWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != 200 || res.HTTPResponse.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("backup: %d %s", res.StatusCode(), res.HTTPResponse.Header.Get("Content-Type"))
	}
	if n, _ := strconv.Atoi(res.HTTPResponse.Header.Get("Content-Length")); n != len(res.Body) {
		t.Errorf("Content-Length %d, body %d bytes", n, len(res.Body))
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, res.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer restored.Close()
	if err := restored.Check(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := restored.Plugin(ctx, p.ID)
	if err != nil || got.SecretHash != store.HashOf(p.Secret) {
		t.Errorf("plugin in the backup: %+v, %v", got, err)
	}
	for tokenString, want := range map[string]bool{tok.AccessToken: true, tok.RefreshToken: true, revoked.AccessToken: false} {
		t2, err := restored.Token(ctx, server.RefOf(tokenString))
		if active := err == nil && t2.Active(h.clock.Now()); active != want {
			t.Errorf("token %.10s… active in the backup = %v, want %v", tokenString, active, want)
		}
	}

	t.Run("ErrUnauthorized", func(t *testing.T) {
		res, err := h.client.GetBackupWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, res.StatusCode(), res.Body, 401, "unauthorized", "")
	})
}

// TestMetricsLabelsClosed sends requests with made-up methods and paths:
// the series they add must come from closed sets (unknown methods become
// "other", unknown routes "unmatched"), so that an unauthenticated scraper
// or client cannot grow /metrics without bound.
func TestMetricsLabelsClosed(t *testing.T) {
	h := newHarness(t)
	for i := range 200 {
		method := fmt.Sprintf("M%03dX", i)
		path := fmt.Sprintf("/api/nothing-%d/%d", i, i*7)
		if i%2 == 0 {
			path = "/api/plugin/plg" + strconv.Itoa(i) + "/token"
		}
		h.do(method, path, "", "")
		h.do("GET", fmt.Sprintf("/random-%d", i), "", "")
	}
	series := 0
	for _, l := range strings.Split(h.metricsText(), "\n") {
		if !strings.HasPrefix(l, "plugintoken_http_requests_total{") {
			continue
		}
		series++
		if strings.Contains(l, `method="M`) || strings.Contains(l, "nothing-") || strings.Contains(l, "random-") {
			t.Errorf("a label took a value from the request: %s", l)
		}
	}
	if series > 10 {
		t.Errorf("400 odd requests made %d series, want a handful:\n%s", series, grepLines(h.metricsText(), "plugintoken_http_requests_total{"))
	}
}

// undecodableStore is a store whose sweeps find a record they cannot decode.
type undecodableStore struct{ store.Store }

func (s undecodableStore) Sweep(ctx context.Context, now time.Time) (store.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now)
	res.Undecodable = append(res.Undecodable, "grants/00ff")
	return res, err
}

// TestSweeperReportsUndecodableOnce: a record the sweeper cannot decode is
// logged once (not on every sweep), counted in a gauge, and the sweep still
// succeeds.
func TestSweeperReportsUndecodableOnce(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.Store = undecodableStore{c.Store} })
	for range 3 {
		if err := h.srv.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(h.logs.String(), "record=grants/00ff"); n != 1 {
		t.Errorf("the undecodable record was logged %d times in 3 sweeps, want once", n)
	}
	if !strings.Contains(h.metricsText(), "plugintoken_undecodable_records 1") {
		t.Errorf("gauge missing:\n%s", grepLines(h.metricsText(), "undecodable"))
	}
}

// TestLogReasons: a refused request's log line says why (never the
// credential); theft detections are logged at WARN; an admin's revocation
// names the plugin whose token it was.
func TestLogReasons(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	h.exchange(p.ID, tokenRequest("bse1", "wrong", code, "table|read"))
	tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read"))
	h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read")) // replay
	other := h.token(p, "table|read")
	h.refresh(p.ID, p.Secret, "ptr_garbage")
	h.refresh(p.ID, p.Secret, other.RefreshToken)
	h.refresh(p.ID, p.Secret, other.RefreshToken) // reuse
	third := h.token(p, "table|read")
	h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: third.AccessToken})
	logs := h.logs.String()
	for _, want := range []string{"reason=invalid_secret", "reason=auth_code_replay", "reason=invalid_refresh_token", "reason=refresh_token_reuse"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no request line with %s in\n%s", want, grepLines(logs, "msg=request"))
		}
	}
	for _, event := range []string{"auth code replay detected", "refresh token reuse detected"} {
		if l := grepLines(logs, event); !strings.Contains(l, "level=WARN") {
			t.Errorf("%q not at WARN: %s", event, l)
		}
	}
	if l := grepLines(logs, "token revoke requested"); !strings.Contains(l, "plugin="+p.ID) {
		t.Errorf("admin revocation does not name the plugin: %s", l)
	}
	for _, secret := range []string{p.Secret, tok.JSON200.AccessToken, other.RefreshToken} {
		if strings.Contains(logs, secret[len(secret)-16:]) {
			t.Error("a credential reached the log")
		}
	}
}

// TestRoutesForNewcomers: HEAD on the health checks, and a root that says
// where the docs are.
func TestRoutesForNewcomers(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if res, _ := h.do("HEAD", path, "", ""); res.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", path, res.StatusCode)
		}
	}
	res, body := h.do("GET", "/", "", "")
	if res.StatusCode != 200 || !strings.Contains(string(body), `"docs":"/docs"`) {
		t.Errorf("GET /: %d %s", res.StatusCode, body)
	}
	res, body = h.do("GET", "/api/openapi.json", "", "")
	if res.StatusCode != 200 || !strings.Contains(string(body), "plugintoken — Teable plugin tokens") || strings.Contains(string(body), "drink a cup of tea") {
		t.Errorf("the reference page's document still shows Teable's header: %.300s", body)
	}
	if !strings.Contains(string(body), "use the POST form") {
		t.Error("the GET token operation does not point browsers to the POST form")
	}
}

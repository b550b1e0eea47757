package server_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/store"
)

func TestRefresh(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		first := h.token(p, "table|read", "record|read")
		h.clock.Add(time.Minute)
		res := h.refresh(p.ID, p.Secret, first.RefreshToken)
		if res.JSON200 == nil {
			t.Fatalf("refresh: %d %s", res.StatusCode(), res.Body)
		}
		checkNoStore(t, res.HTTPResponse.Header)
		second := *res.JSON200
		if !accessTokenRe.MatchString(second.AccessToken) || !refreshTokenRe.MatchString(second.RefreshToken) ||
			second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
			t.Errorf("new pair = %+v", second)
		}
		if !slices.Equal(second.Scopes, first.Scopes) || second.ExpiresIn != 600 || second.RefreshExpiresIn != 2592000 {
			t.Errorf("refresh changed scopes or lifetimes: %+v", second)
		}
		h.checkActive(false, first.AccessToken, first.RefreshToken)
		h.checkActive(true, second.AccessToken, second.RefreshToken)
	})

	for name, tc := range map[string]struct {
		call    func(h *harness, p, other gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse
		status  int
		code    string
		message string
	}{
		"ErrInvalidSecret": {func(h *harness, p, _ gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh(p.ID, "x"+p.Secret, tok.RefreshToken)
		}, 400, "validation_error", "Invalid secret"},
		"ErrOtherPluginsToken": {func(h *harness, _, other gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh(other.ID, other.Secret, tok.RefreshToken)
		}, 400, "validation_error", "Invalid refresh token"},
		"ErrAccessTokenPresented": {func(h *harness, p, _ gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh(p.ID, p.Secret, tok.AccessToken)
		}, 400, "validation_error", "Invalid refresh token"},
		"ErrUnknownToken": {func(h *harness, p, _ gen.PluginWithSecret, _ gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh(p.ID, p.Secret, "ptr_unknown")
		}, 400, "validation_error", "Invalid refresh token"},
		"ErrPluginNotFound": {func(h *harness, p, _ gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh("pluNoSuchPlugin0000", p.Secret, tok.RefreshToken)
		}, 404, "not_found", "Plugin not found"},
		"ErrMissingSecret": {func(h *harness, p, _ gen.PluginWithSecret, tok gen.PluginTokenResponse) *gen.RefreshPluginTokenResponse {
			return h.refresh(p.ID, "", tok.RefreshToken)
		}, 400, "validation_error", ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			p, other := h.createPlugin(), h.createPlugin()
			tok := h.token(p, "table|read")
			res := tc.call(h, p, other, tok)
			checkError(t, res.StatusCode(), res.Body, tc.status, tc.code, tc.message)
			checkNoStore(t, res.HTTPResponse.Header)
			// A failed attempt changes nothing.
			h.checkActive(true, tok.AccessToken, tok.RefreshToken)
			if ok := h.refresh(p.ID, p.Secret, tok.RefreshToken); ok.StatusCode() != http.StatusOK {
				t.Errorf("owner's refresh after a failed attempt: %d %s", ok.StatusCode(), ok.Body)
			}
		})
	}

	t.Run("ErrExpired", func(t *testing.T) {
		h := newHarness(t, func(c *server.Config) { c.RefreshTokenTTL = time.Hour })
		p := h.createPlugin()
		tok := h.token(p, "table|read")
		h.clock.Add(time.Hour)
		res := h.refresh(p.ID, p.Secret, tok.RefreshToken)
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "Invalid refresh token")
	})
}

func TestRefreshReuse(t *testing.T) {
	t.Run("RevokesFamily", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		first := h.token(p, "table|read")
		second := h.refresh(p.ID, p.Secret, first.RefreshToken).JSON200
		third := h.refresh(p.ID, p.Secret, second.RefreshToken).JSON200
		other := h.token(p, "table|read") // another family, untouched

		res := h.refresh(p.ID, p.Secret, first.RefreshToken)
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "Invalid refresh token")
		h.checkActive(false, second.AccessToken, second.RefreshToken, third.AccessToken, third.RefreshToken)
		h.checkActive(true, other.AccessToken, other.RefreshToken)
		if !strings.Contains(h.logs.String(), "reuse detected") {
			t.Error("reuse not logged")
		}
		again := h.refresh(p.ID, p.Secret, third.RefreshToken)
		checkError(t, again.StatusCode(), again.Body, 400, "validation_error", "Invalid refresh token")
	})
	t.Run("WithinGrace", func(t *testing.T) {
		h := newHarness(t, func(c *server.Config) { c.RefreshReuseGrace = 10 * time.Second })
		p := h.createPlugin()
		first := h.token(p, "table|read")
		second := h.refresh(p.ID, p.Secret, first.RefreshToken).JSON200
		h.clock.Add(5 * time.Second)
		retry := h.refresh(p.ID, p.Secret, first.RefreshToken)
		if retry.JSON200 == nil {
			t.Fatalf("retry within grace: %d %s", retry.StatusCode(), retry.Body)
		}
		h.checkActive(true, second.RefreshToken, retry.JSON200.AccessToken, retry.JSON200.RefreshToken)

		h.clock.Add(5 * time.Second)
		late := h.refresh(p.ID, p.Secret, first.RefreshToken)
		checkError(t, late.StatusCode(), late.Body, 400, "validation_error", "Invalid refresh token")
		h.checkActive(false, second.RefreshToken, retry.JSON200.AccessToken, retry.JSON200.RefreshToken)
	})
}

func TestCodeReplay(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	body := tokenRequest("bse1", p.Secret, code, "table|read")
	first := h.exchange(p.ID, body).JSON200
	second := h.refresh(p.ID, p.Secret, first.RefreshToken).JSON200

	replay := h.exchange(p.ID, body)
	checkError(t, replay.StatusCode(), replay.Body, 400, "validation_error", "Invalid auth code")
	h.checkActive(false, first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken)
	if !strings.Contains(h.logs.String(), "replay detected") {
		t.Error("replay not logged")
	}

	t.Run("TombstoneLastsUntilExpiry", func(t *testing.T) {
		code := h.authCode(p.ID, "bse1")
		tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read")).JSON200
		h.clock.Add(4 * time.Minute)
		if err := h.srv.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		// Swept before its expiry, the tombstone would make this an
		// unknown code: the replay must still be recognised as one.
		replay := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read"))
		checkError(t, replay.StatusCode(), replay.Body, 400, "validation_error", "Invalid auth code")
		if !strings.Contains(h.logs.String(), "auth code replay detected") {
			t.Error("the replay after a sweep was not recognised as a replay")
		}
		h.checkActive(false, tok.AccessToken, tok.RefreshToken)
	})
}

func TestIntrospect(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "table|read", "record|read")

	got := h.introspect(tok.AccessToken)
	now := h.clock.Now()
	if !got.Active || *got.TokenType != "access" || *got.PluginID != p.ID || *got.BaseID != "bse1" ||
		!slices.Equal(*got.Scopes, []string{"table|read", "record|read"}) ||
		*got.Iat != now.Unix() || *got.Exp != now.Add(600*time.Second).Unix() {
		t.Errorf("access introspection = %+v", got)
	}
	if got := h.introspect(tok.RefreshToken); !got.Active || *got.TokenType != "refresh" ||
		*got.Exp != now.Add(30*24*time.Hour).Unix() {
		t.Errorf("refresh introspection = %+v", got)
	}

	inactive := map[string]func() string{
		"Unknown":      func() string { return "pta_doesnotexist" },
		"Garbage":      func() string { return "💥 not a token at all" },
		"AuthCode":     func() string { return h.authCode(p.ID, "bse1") },
		"PluginSecret": func() string { return p.Secret },
		"Expired": func() string {
			tok := h.token(p, "table|read")
			h.clock.Add(600 * time.Second)
			return tok.AccessToken
		},
		"Revoked": func() string {
			tok := h.token(p, "table|read")
			if res, _ := h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: tok.AccessToken}); res.StatusCode() != 200 {
				t.Fatalf("revoke: %d", res.StatusCode())
			}
			return tok.AccessToken
		},
		"Rotated": func() string {
			tok := h.token(p, "table|read")
			h.refresh(p.ID, p.Secret, tok.RefreshToken)
			return tok.RefreshToken
		},
		"PluginDeleted": func() string {
			q := h.createPlugin()
			tok := h.token(q, "table|read")
			h.admin.DeletePluginWithResponse(ctx, q.ID)
			return tok.AccessToken
		},
	}
	for name, token := range inactive {
		t.Run(name, func(t *testing.T) {
			res, err := h.admin.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: token()})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode() != 200 || strings.TrimSpace(string(res.Body)) != `{"active":false}` {
				t.Errorf("got %d %s, want exactly {\"active\":false}", res.StatusCode(), res.Body)
			}
		})
	}
	t.Run("ErrUnauthorized", func(t *testing.T) {
		res, err := h.client.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: tok.AccessToken})
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, res.StatusCode(), res.Body, 401, "unauthorized", "")
	})
	t.Run("ErrEmptyToken", func(t *testing.T) {
		res, _ := h.admin.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: ""})
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "")
	})
}

func TestRevoke(t *testing.T) {
	ptr := func(s string) *string { return &s }
	revoke := func(h *harness, c *gen.ClientWithResponses, body gen.RevokeRequest) *gen.RevokeTokenResponse {
		t.Helper()
		res, err := c.RevokeTokenWithResponse(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ok := func(t *testing.T, res *gen.RevokeTokenResponse) {
		t.Helper()
		if res.JSON200 == nil || !res.JSON200.Revoked {
			t.Fatalf("revoke: %d %s", res.StatusCode(), res.Body)
		}
	}
	t.Run("RefreshByPluginTakesAccess", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		tok := h.token(p, "table|read")
		ok(t, revoke(h, h.client, gen.RevokeRequest{Token: tok.RefreshToken, PluginID: &p.ID, Secret: &p.Secret}))
		h.checkActive(false, tok.AccessToken, tok.RefreshToken)
	})
	t.Run("AccessByPluginLeavesRefresh", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		tok := h.token(p, "table|read")
		ok(t, revoke(h, h.client, gen.RevokeRequest{Token: tok.AccessToken, PluginID: &p.ID, Secret: &p.Secret}))
		h.checkActive(false, tok.AccessToken)
		h.checkActive(true, tok.RefreshToken)
		if res := h.refresh(p.ID, p.Secret, tok.RefreshToken); res.StatusCode() != 200 {
			t.Errorf("refresh after access revocation: %d %s", res.StatusCode(), res.Body)
		}
	})
	t.Run("ByAdmin", func(t *testing.T) {
		h := newHarness(t)
		tok := h.token(h.createPlugin(), "table|read")
		ok(t, revoke(h, h.admin, gen.RevokeRequest{Token: tok.RefreshToken}))
		h.checkActive(false, tok.AccessToken, tok.RefreshToken)
	})
	t.Run("UnknownTokenIsOK", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		ok(t, revoke(h, h.client, gen.RevokeRequest{Token: "ptr_nope", PluginID: &p.ID, Secret: &p.Secret}))
		ok(t, revoke(h, h.admin, gen.RevokeRequest{Token: "garbage"}))
	})
	t.Run("OtherPluginsTokenUntouched", func(t *testing.T) {
		h := newHarness(t)
		p, other := h.createPlugin(), h.createPlugin()
		tok := h.token(p, "table|read")
		ok(t, revoke(h, h.client, gen.RevokeRequest{Token: tok.AccessToken, PluginID: &other.ID, Secret: &other.Secret}))
		h.checkActive(true, tok.AccessToken)
	})
	t.Run("ErrInvalidSecret", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		tok := h.token(p, "table|read")
		res := revoke(h, h.client, gen.RevokeRequest{Token: tok.AccessToken, PluginID: &p.ID, Secret: ptr("wrong")})
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "Invalid secret")
		h.checkActive(true, tok.AccessToken)
	})
	t.Run("ErrPluginNotFound", func(t *testing.T) {
		h := newHarness(t)
		res := revoke(h, h.client, gen.RevokeRequest{Token: "pta_x", PluginID: ptr("pluNoSuchPlugin0000"), Secret: ptr("s")})
		checkError(t, res.StatusCode(), res.Body, 404, "not_found", "Plugin not found")
	})
	t.Run("ErrNoCredentials", func(t *testing.T) {
		h := newHarness(t)
		res := revoke(h, h.client, gen.RevokeRequest{Token: "pta_x"})
		checkError(t, res.StatusCode(), res.Body, 400, "validation_error", "")
	})
	t.Run("ErrBadBearer", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin()
		tok := h.token(p, "table|read")
		bad := mustClient(t, h.url+"/api", gen.WithRequestEditorFn(bearer("not-the-admin-token-at-all")))
		res := revoke(h, bad, gen.RevokeRequest{Token: tok.AccessToken, PluginID: &p.ID, Secret: &p.Secret})
		checkError(t, res.StatusCode(), res.Body, 401, "unauthorized", "")
		h.checkActive(true, tok.AccessToken)
	})
}

func TestRequireToken(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "table|read")

	app := echo.New()
	app.GET("/records", func(c echo.Context) error {
		who, _ := server.PrincipalFrom(c)
		return c.String(http.StatusOK, who.PluginID+" "+who.BaseID+" "+strings.Join(who.Scopes, ","))
	}, h.srv.RequireToken("table|read"))
	app.GET("/admin-only", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, h.srv.RequireToken("table|read", "record|delete"))
	ts := httptest.NewServer(app)
	defer ts.Close()

	get := func(path, authorization string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}

	res, body := get("/records", "Bearer "+tok.AccessToken)
	if res.StatusCode != 200 || body != p.ID+" bse1 table|read" {
		t.Errorf("OK: %d %q", res.StatusCode, body)
	}

	expired := h.token(p, "table|read")
	revoked := h.token(p, "table|read")
	h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: revoked.AccessToken})
	for name, authz := range map[string]string{
		"ErrMissing":      "",
		"ErrNotBearer":    "Basic " + tok.AccessToken,
		"ErrUnknown":      "Bearer pta_unknown",
		"ErrRefreshToken": "Bearer " + tok.RefreshToken,
		"ErrRevoked":      "Bearer " + revoked.AccessToken,
		"ErrExpired":      "Bearer " + expired.AccessToken,
	} {
		t.Run(name, func(t *testing.T) {
			if name == "ErrExpired" {
				h.clock.Add(601 * time.Second)
				defer h.clock.Add(-601 * time.Second)
			}
			res, body := get("/records", authz)
			checkError(t, res.StatusCode, []byte(body), 401, "unauthorized", "")
			got := res.Header.Get("WWW-Authenticate")
			if name == "ErrMissing" {
				// RFC 6750 §3.1: no credentials, no error code.
				if got != `Bearer realm="plugintoken"` {
					t.Errorf("WWW-Authenticate = %q, want the realm alone", got)
				}
			} else if !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	t.Run("ErrInsufficientScope", func(t *testing.T) {
		res, body := get("/admin-only", "Bearer "+tok.AccessToken)
		checkError(t, res.StatusCode, []byte(body), 403, "restricted_resource", "")
		if got := res.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) || !strings.Contains(got, "record|delete") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
}

// TestPrincipalIsACopy: a host handler that edits the principal's scopes in
// place (an ordinary bug) must not change what the token grants: the next
// request still lacks the scope, and introspection still reports the
// original one.
func TestPrincipalIsACopy(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "record|read")
	app := echo.New()
	app.GET("/edit", func(c echo.Context) error {
		who, _ := server.PrincipalFrom(c)
		who.Scopes[0] = "record|create"
		return c.NoContent(http.StatusOK)
	}, h.srv.RequireToken("record|read"))
	app.GET("/create", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, h.srv.RequireToken("record|create"))
	ts := httptest.NewServer(app)
	defer ts.Close()
	get := func(path string) int {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := get("/edit"); got != 200 {
		t.Fatalf("/edit: %d", got)
	}
	if got := get("/create"); got != http.StatusForbidden {
		t.Errorf("a record|read token passed RequireToken(record|create) after a handler edited its principal: %d", got)
	}
	if in := h.introspect(tok.AccessToken); in.Scopes == nil || len(*in.Scopes) != 1 || (*in.Scopes)[0] != "record|read" {
		t.Errorf("introspection after the edit: %+v", in.Scopes)
	}
}

func TestTokenRequiresBearer(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.TokenRequiresBearer = true })
	p := h.createPlugin()
	body := tokenRequest("bse1", p.Secret, h.authCode(p.ID, "bse1"), "table|read")
	res := h.exchange(p.ID, body)
	checkError(t, res.StatusCode(), res.Body, 401, "unauthorized", "")
	withBearer, err := h.admin.PostPluginTokenWithBodyWithResponse(ctx, p.ID, "application/json", strings.NewReader(body))
	if err != nil || withBearer.JSON200 == nil {
		t.Fatalf("with bearer: %v %s", err, withBearer.Body)
	}
	refresh := h.refresh(p.ID, p.Secret, withBearer.JSON200.RefreshToken)
	checkError(t, refresh.StatusCode(), refresh.Body, 401, "unauthorized", "")
}

func TestSweeper(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	tok := h.token(p, "table|read")
	unused := h.authCode(p.ID, "bse1")
	h.clock.Add(31 * 24 * time.Hour)
	if err := h.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok.AccessToken, tok.RefreshToken} {
		if _, err := h.db.Token(ctx, server.RefOf(s)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired token %.8s… not swept", s)
		}
	}
	if _, err := h.db.AuthCode(ctx, server.RefOf(unused).Key); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired code not swept")
	}
	if !strings.Contains(h.logs.String(), "swept expired records") {
		t.Error("sweep not logged")
	}
}

// TestRefreshRace presents one refresh token from two (and from eight)
// concurrent requests, round after round, on a real bbolt file: exactly one
// gets a new pair, and with no grace the family is revoked afterwards, the
// winner's new pair included.
func TestRefreshRace(t *testing.T) {
	t.Parallel() // slow, and on its own store: beside the other slow ones
	// The real clock: each request is stamped when its handler starts, so
	// a request stamped before the rotation that beats it can be decided
	// after it.
	h := newHarness(t, func(c *server.Config) { c.MaxFailures, c.Now = -1, time.Now })
	p := h.createPlugin()
	for n, rounds := range map[int]int{2: 150, 8: 60} {
		for round := range rounds {
			tok := h.token(p, "table|read")
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []gen.PluginTokenResponse
			for range n {
				wg.Go(func() {
					res := h.refresh(p.ID, p.Secret, tok.RefreshToken)
					if res.JSON200 != nil {
						mu.Lock()
						winners = append(winners, *res.JSON200)
						mu.Unlock()
					} else if res.StatusCode() != http.StatusBadRequest {
						t.Errorf("refresh: %d %s", res.StatusCode(), res.Body)
					}
				})
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("%d-way round %d: %d refreshes answered 200, want exactly 1", n, round, len(winners))
			}
			h.checkActive(false, winners[0].AccessToken, winners[0].RefreshToken)
		}
	}
}

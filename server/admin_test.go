package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/store"
)

var (
	secretRe   = regexp.MustCompile(`^[0-9a-z]{40}$`)
	pluginIDRe = regexp.MustCompile(`^plu[0-9A-Za-z]{16}$`)
	authCodeRe = regexp.MustCompile(`^ptc_[A-Za-z0-9_-]{75}$`)
)

func TestAdminRoutesNeedBearer(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	routes := []struct{ method, path, body string }{
		{"POST", "/api/plugin", `{"name":"x"}`},
		{"GET", "/api/plugin/" + p.ID, ""},
		{"DELETE", "/api/plugin/" + p.ID, ""},
		{"POST", "/api/plugin/" + p.ID + "/regenerate-secret", ""},
		{"POST", "/api/plugin/" + p.ID + "/authCode", `{"baseId":"bse1"}`},
	}
	credentials := map[string][]string{
		"ErrNoHeader":    nil,
		"ErrWrongToken":  {"Authorization", "Bearer wrong-token-0123456789"},
		"ErrWrongScheme": {"Authorization", "Basic " + adminToken},
		"ErrEmptyBearer": {"Authorization", "Bearer "},
		"ErrPlugSecret":  {"Authorization", "Bearer " + p.Secret},
	}
	for _, r := range routes {
		for name, header := range credentials {
			t.Run(r.method+" "+r.path+"/"+name, func(t *testing.T) {
				res, body := h.do(r.method, r.path, "application/json", r.body, header...)
				checkError(t, res.StatusCode, body, http.StatusUnauthorized, "unauthorized", "")
				if got := res.Header.Get("WWW-Authenticate"); got == "" || got[:6] != "Bearer" {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
			})
		}
	}
	// Nothing above changed anything: the plugin is there with its old
	// secret (no unauthenticated regeneration), no other plugin exists,
	// and the old secret still exchanges a code.
	stored, err := h.db.Plugin(ctx, p.ID)
	if err != nil || stored.SecretHash != store.HashOf(p.Secret) {
		t.Fatalf("plugin changed by unauthenticated requests: %v", err)
	}
	if tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, h.authCode(p.ID, "bse1"), "table|read")); tok.StatusCode() != 200 {
		t.Errorf("the plugin's secret stopped working after unauthenticated requests: %d %s", tok.StatusCode(), tok.Body)
	}
}

func TestCreatePlugin(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		h := newHarness(t)
		res, body := h.do("POST", "/api/plugin", "application/json",
			`{"name":"Chart","logo":"https://example.invalid/logo.png","positions":["dashboard"]}`,
			"Authorization", "Bearer "+adminToken)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d %s", res.StatusCode, body)
		}
		checkNoStore(t, res.Header)
		var p gen.PluginWithSecret
		if err := json.Unmarshal(body, &p); err != nil || p.Name != "Chart" {
			t.Fatalf("answer %s: %v", body, err)
		}
		if !pluginIDRe.MatchString(p.ID) || !secretRe.MatchString(p.Secret) {
			t.Errorf("id %q or secret %q has the wrong form", p.ID, p.Secret)
		}
		if !slices.Equal(p.Scopes, h.srv.Scopes()) {
			t.Errorf("default scopes = %v, want the vocabulary %v", p.Scopes, h.srv.Scopes())
		}
		stored, err := h.db.Plugin(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.SecretHash != store.HashOf(p.Secret) {
			t.Error("stored secret hash is not SHA-256 of the secret")
		}
	})
	t.Run("OKWithScopes", func(t *testing.T) {
		h := newHarness(t)
		p := h.createPlugin("table|read", "record|read", "table|read")
		if want := []string{"table|read", "record|read"}; !slices.Equal(p.Scopes, want) {
			t.Errorf("scopes = %v, want %v", p.Scopes, want)
		}
	})
	for name, tc := range map[string]struct{ body, message string }{
		"ErrScopeNotInVocabulary": {`{"name":"x","scopes":["table|read","base|db_connection"]}`, `Scope "base|db_connection" is not a plugin scope`},
		"ErrScopesEmpty":          {`{"name":"x","scopes":[]}`, ""},
		"ErrNameMissing":          {`{"scopes":["table|read"]}`, ""},
		"ErrNameEmpty":            {`{"name":""}`, ""},
		"ErrMalformedJSON":        {`{"name":`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			res, body := h.do("POST", "/api/plugin", "application/json", tc.body, "Authorization", "Bearer "+adminToken)
			checkError(t, res.StatusCode, body, http.StatusBadRequest, "validation_error", tc.message)
		})
	}
}

func TestGetPlugin(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	res, err := h.admin.GetPluginWithResponse(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.JSON200 == nil {
		t.Fatalf("status = %d %s", res.StatusCode(), res.Body)
	}
	got := *res.JSON200
	wantMasked := "************************************" + p.Secret[36:]
	if got.ID != p.ID || got.Name != "Chart" || !slices.Equal(got.Scopes, []string{"table|read"}) || got.Secret != wantMasked {
		t.Errorf("got %+v, want secret %q", got, wantMasked)
	}

	t.Run("ErrNotFound", func(t *testing.T) {
		res, err := h.admin.GetPluginWithResponse(ctx, "pluNoSuchPlugin0000")
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, res.StatusCode(), res.Body, http.StatusNotFound, "not_found", "Plugin not found")
	})
}

func TestRegeneratePluginSecret(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	h.token(p, "table|read") // the plugin has been used (and may be cached) before
	res, err := h.admin.RegeneratePluginSecretWithResponse(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.JSON200 == nil {
		t.Fatalf("status = %d %s", res.StatusCode(), res.Body)
	}
	checkNoStore(t, res.HTTPResponse.Header)
	fresh := res.JSON200.Secret
	if res.JSON200.ID != p.ID || !secretRe.MatchString(fresh) || fresh == p.Secret {
		t.Fatalf("got %+v", res.JSON200)
	}

	code := h.authCode(p.ID, "bse1")
	old := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read"))
	checkError(t, old.StatusCode(), old.Body, http.StatusBadRequest, "validation_error", "Invalid secret")
	if ok := h.exchange(p.ID, tokenRequest("bse1", fresh, code, "table|read")); ok.StatusCode() != http.StatusOK {
		t.Errorf("new secret refused: %d %s", ok.StatusCode(), ok.Body)
	}

	t.Run("ErrNotFound", func(t *testing.T) {
		res, err := h.admin.RegeneratePluginSecretWithResponse(ctx, "pluNoSuchPlugin0000")
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, res.StatusCode(), res.Body, http.StatusNotFound, "not_found", "Plugin not found")
	})
}

func TestDeletePlugin(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	spent := h.authCode(p.ID, "bse1")
	tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, spent, "table|read")).JSON200
	unused := h.authCode(p.ID, "bse1")

	res, err := h.admin.DeletePluginWithResponse(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != http.StatusNoContent {
		t.Fatalf("status = %d %s", res.StatusCode(), res.Body)
	}

	// Its codes and tokens stop working at once.
	gone := h.exchange(p.ID, tokenRequest("bse1", p.Secret, unused, "table|read"))
	checkError(t, gone.StatusCode(), gone.Body, http.StatusNotFound, "not_found", "Plugin not found")
	for _, token := range []string{tok.AccessToken, tok.RefreshToken} {
		if _, err := h.db.Token(ctx, server.RefOf(token)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token of a deleted plugin still found")
		}
	}
	again, _ := h.admin.DeletePluginWithResponse(ctx, p.ID)
	checkError(t, again.StatusCode(), again.Body, http.StatusNotFound, "not_found", "Plugin not found")
	read, _ := h.admin.GetPluginWithResponse(ctx, p.ID)
	checkError(t, read.StatusCode(), read.Body, http.StatusNotFound, "not_found", "Plugin not found")
}

func TestCreateAuthCode(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	res, err := h.admin.CreateAuthCodeWithResponse(ctx, p.ID, gen.AuthCodeRequest{BaseID: "bse1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.JSON200 == nil {
		t.Fatalf("status = %d %s", res.StatusCode(), res.Body)
	}
	checkNoStore(t, res.HTTPResponse.Header)
	if !authCodeRe.MatchString(res.JSON200.Code) || res.JSON200.ExpiresIn != 300 {
		t.Errorf("got %+v", res.JSON200)
	}
	c, err := h.db.AuthCode(ctx, server.RefOf(res.JSON200.Code).Key)
	if err != nil {
		t.Fatalf("code not stored under its hash: %v", err)
	}
	if c.PluginID != p.ID || c.BaseID != "bse1" || !c.ExpiresAt.Equal(h.clock.Now().Add(300e9)) {
		t.Errorf("stored code = %+v", c)
	}

	t.Run("ErrNotFound", func(t *testing.T) {
		res, err := h.admin.CreateAuthCodeWithResponse(ctx, "pluNoSuchPlugin0000", gen.AuthCodeRequest{BaseID: "bse1"})
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, res.StatusCode(), res.Body, http.StatusNotFound, "not_found", "Plugin not found")
	})
	for name, body := range map[string]string{
		"ErrBaseIDMissing": `{}`,
		"ErrBaseIDEmpty":   `{"baseId":""}`,
		"ErrWrongType":     `{"baseId":["bse1"]}`,
		"ErrNoBody":        ``,
	} {
		t.Run(name, func(t *testing.T) {
			res, b := h.do("POST", "/api/plugin/"+p.ID+"/authCode", "application/json", body, "Authorization", "Bearer "+adminToken)
			checkError(t, res.StatusCode, b, http.StatusBadRequest, "validation_error", "")
		})
	}
}

// TestStaticTokensRefuseWeakTokens: long enough is not enough: a token of
// repeated or few distinct characters is refused (it used to be accepted
// at 32 characters), and random ones of the usual forms pass.
func TestStaticTokensRefuseWeakTokens(t *testing.T) {
	for _, weak := range []string{strings.Repeat("a", 32), strings.Repeat("abcd", 10), strings.Repeat("0123456789", 4), "abcdefghijklmnopqrstuvwxyz012345", "short"} {
		if _, err := server.StaticTokens(weak); !errors.Is(err, server.ErrWeakAdminToken) {
			t.Errorf("StaticTokens(%q): %v, want ErrWeakAdminToken", weak, err)
		}
	}
	for _, strong := range []string{"3f9c1a7be2d04c5a8e6b1f0d9a2c7e4b", "ptadmin_Zk3vQx9L2mN8pR4tW7yB1cF6hJ0sD5gA-uE_iO3kL9x", adminToken} {
		if _, err := server.StaticTokens(strong); err != nil {
			t.Errorf("StaticTokens(%q): %v", strong, err)
		}
	}
}

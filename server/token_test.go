package server_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/store"
)

var (
	accessTokenRe  = regexp.MustCompile(`^pta_[A-Za-z0-9_-]{75}$`) // 24-byte key + 256-bit secret
	refreshTokenRe = regexp.MustCompile(`^ptr_[A-Za-z0-9_-]{75}$`)
)

func TestToken(t *testing.T) {
	// The upstream document's GET with a JSON body, and the POST that
	// Teable's real clients send, are the same operation.
	methods := map[string]func(h *harness, id string, body gen.PluginTokenRequest) (int, http.Header, *gen.PluginTokenResponse){
		"GET": func(h *harness, id string, body gen.PluginTokenRequest) (int, http.Header, *gen.PluginTokenResponse) {
			res, err := h.client.GetPluginTokenWithResponse(ctx, id, body)
			if err != nil {
				t.Fatal(err)
			}
			if res.HTTPResponse.Request.Method != http.MethodGet {
				t.Fatalf("client sent %s", res.HTTPResponse.Request.Method)
			}
			return res.StatusCode(), res.HTTPResponse.Header, res.JSON200
		},
		"POST": func(h *harness, id string, body gen.PluginTokenRequest) (int, http.Header, *gen.PluginTokenResponse) {
			res, err := h.client.PostPluginTokenWithResponse(ctx, id, body)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode(), res.HTTPResponse.Header, res.JSON200
		},
	}
	for method, send := range methods {
		t.Run(method+"/OK", func(t *testing.T) {
			h := newHarness(t)
			p := h.createPlugin()
			code := h.authCode(p.ID, "bse1")
			status, header, tok := send(h, p.ID, gen.PluginTokenRequest{
				BaseID: "bse1", Secret: p.Secret, AuthCode: code, Scopes: []string{"table|read", "record|read", "table|read"},
			})
			if status != http.StatusOK || tok == nil {
				t.Fatalf("status = %d", status)
			}
			checkNoStore(t, header)
			if !accessTokenRe.MatchString(tok.AccessToken) || !refreshTokenRe.MatchString(tok.RefreshToken) {
				t.Errorf("tokens %q, %q do not have the expected form", tok.AccessToken, tok.RefreshToken)
			}
			if got, want := tok.Scopes, []string{"table|read", "record|read"}; !slices.Equal(got, want) {
				t.Errorf("scopes = %v, want %v", got, want)
			}
			if tok.ExpiresIn != 600 || tok.RefreshExpiresIn != 2592000 {
				t.Errorf("expiresIn = %v, refreshExpiresIn = %v; want 600, 2592000", tok.ExpiresIn, tok.RefreshExpiresIn)
			}

			// Stored by hash, with plugin, base, scopes, times and the code.
			access, err := h.db.Token(ctx, server.RefOf(tok.AccessToken))
			if err != nil {
				t.Fatalf("access token not stored under its hash: %v", err)
			}
			if access.Kind != store.KindAccess || access.PluginID != p.ID || access.BaseID != "bse1" ||
				!slices.Equal(access.Scopes, tok.Scopes) || access.Key.Family() != server.RefOf(code).Key.Family() ||
				!access.IssuedAt.Equal(h.clock.Now()) || !access.ExpiresAt.Equal(h.clock.Now().Add(600*time.Second)) {
				t.Errorf("stored access token = %+v", access)
			}
			refresh, err := h.db.Token(ctx, server.RefOf(tok.RefreshToken))
			if err != nil {
				t.Fatalf("refresh token not stored under its hash: %v", err)
			}
			if refresh.Kind != store.KindRefresh || !refresh.ExpiresAt.Equal(h.clock.Now().Add(30*24*time.Hour)) {
				t.Errorf("stored refresh token = %+v", refresh)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel() // slow, and on its own store: beside the other slow ones
	type setup struct {
		h      *harness
		plugin gen.PluginWithSecret // the plugin the code was issued for
		other  gen.PluginWithSecret // another plugin, with its own secret
		code   string
	}
	tests := []struct {
		name        string
		pluginID    func(s setup) string
		body        func(s setup) string
		status      int
		code        string
		message     string
		codeIsSpent bool
	}{
		{name: "ErrInvalidSecret", body: func(s setup) string {
			return tokenRequest("bse1", "wrong"+s.plugin.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid secret"},
		{name: "ErrInvalidSecretOtherPlugin", body: func(s setup) string {
			return tokenRequest("bse1", s.other.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid secret"},
		{name: "ErrAuthCodeUnknown", body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, "ptc_nope", "table|read")
		}, status: 400, code: "validation_error", message: "Invalid auth code"},
		{name: "ErrAuthCodeUsed", body: func(s setup) string {
			if res := s.h.exchange(s.plugin.ID, tokenRequest("bse1", s.plugin.Secret, s.code, "table|read")); res.StatusCode() != 200 {
				s.h.t.Fatalf("first exchange: %d %s", res.StatusCode(), res.Body)
			}
			return tokenRequest("bse1", s.plugin.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid auth code", codeIsSpent: true},
		{name: "ErrAuthCodeExpired", body: func(s setup) string {
			s.h.clock.Add(300 * time.Second)
			return tokenRequest("bse1", s.plugin.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid auth code", codeIsSpent: true},
		{name: "ErrAuthCodeOtherBase", body: func(s setup) string {
			return tokenRequest("bse2", s.plugin.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid auth code"},
		{name: "ErrAuthCodeOtherPlugin", pluginID: func(s setup) string { return s.other.ID }, body: func(s setup) string {
			// The other plugin's valid secret with this plugin's code.
			return tokenRequest("bse1", s.other.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error", message: "Invalid auth code"},
		{name: "ErrPluginNotFound", pluginID: func(setup) string { return "pluNoSuchPlugin0000" }, body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, s.code, "table|read")
		}, status: 404, code: "not_found", message: "Plugin not found"},
		{name: "ErrScopeNotInVocabulary", body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, s.code, "table|read", "space|create")
		}, status: 400, code: "validation_error", message: `Scope "space|create" is not a plugin scope`},
		{name: "ErrScopeNotAllowedForPlugin", body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, s.code, "record|delete")
		}, status: 400, code: "validation_error", message: `Scope "record|delete" is not allowed for this plugin`},
		{name: "ErrScopesEmpty", body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, s.code)
		}, status: 400, code: "validation_error"},
		{name: "ErrScopeEmptyString", body: func(s setup) string {
			return tokenRequest("bse1", s.plugin.Secret, s.code, "")
		}, status: 400, code: "validation_error"},
		{name: "ErrSecretEmpty", body: func(s setup) string {
			return tokenRequest("bse1", "", s.code, "table|read")
		}, status: 400, code: "validation_error"},
		{name: "ErrBaseIDEmpty", body: func(s setup) string {
			return tokenRequest("", s.plugin.Secret, s.code, "table|read")
		}, status: 400, code: "validation_error"},
		{name: "ErrAuthCodeMissing", body: func(s setup) string {
			return `{"baseId":"bse1","secret":"` + s.plugin.Secret + `","scopes":["table|read"]}`
		}, status: 400, code: "validation_error"},
		{name: "ErrWrongType", body: func(s setup) string {
			return `{"baseId":1,"secret":"` + s.plugin.Secret + `","scopes":["table|read"],"authCode":"` + s.code + `"}`
		}, status: 400, code: "validation_error"},
		{name: "ErrScopesNotArray", body: func(s setup) string {
			return `{"baseId":"bse1","secret":"` + s.plugin.Secret + `","scopes":"table|read","authCode":"` + s.code + `"}`
		}, status: 400, code: "validation_error"},
		{name: "ErrMalformedJSON", body: func(s setup) string {
			return `{"baseId":"bse1",`
		}, status: 400, code: "validation_error"},
		{name: "ErrEmptyBody", body: func(s setup) string { return "" }, status: 400, code: "validation_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			p := h.createPlugin("table|read", "record|read")
			s := setup{h: h, plugin: p, other: h.createPlugin("table|read"), code: h.authCode(p.ID, "bse1")}
			pluginID := p.ID
			if tt.pluginID != nil {
				pluginID = tt.pluginID(s)
			}
			body := tt.body(s)
			res := h.exchange(pluginID, body)
			checkError(t, res.StatusCode(), res.Body, tt.status, tt.code, tt.message)
			checkNoStore(t, res.HTTPResponse.Header)

			// A refused request consumes nothing: the owner can still
			// redeem the code (unless the case spent or expired it).
			if !tt.codeIsSpent {
				ok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, s.code, "table|read"))
				if ok.StatusCode() != http.StatusOK {
					t.Errorf("code unusable after a refused request: %d %s", ok.StatusCode(), ok.Body)
				}
			}
		})
	}
}

func TestTokenConcurrentRedemption(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	body := tokenRequest("bse1", p.Secret, code, "table|read")

	const n = 50
	statuses := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := h.client.PostPluginTokenWithBodyWithResponse(ctx, p.ID, "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i], bodies[i] = res.StatusCode(), string(res.Body)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		switch {
		case s == http.StatusOK:
			ok++
		case s == http.StatusBadRequest && strings.Contains(bodies[i], "Invalid auth code"):
		case s == http.StatusTooManyRequests: // the replays spent the failure budget
		default:
			t.Errorf("request %d: %d %s", i, s, bodies[i])
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
	}
}

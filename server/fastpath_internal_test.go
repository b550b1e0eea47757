package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"
	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/server/internal/bodycheck"
	"github.com/plugintoken/plugintoken/server/internal/fastpath"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// TestFastPathOnHotRoutes: the routes a plugin's backend and a gateway call
// most take the fast path with the served document. An updated document
// whose schema carries a keyword bodycheck does not know is still served
// correctly (by kin-openapi alone), but several times slower: this test
// then fails, so that `make update-spec` (which runs it) reports the loss
// instead of taking it silently. Teach bodycheck the keyword, or decide to
// take the slower path and drop the route from this list.
func TestFastPathOnHotRoutes(t *testing.T) {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"getPluginToken", "postPluginToken", "refreshPluginToken", "introspectToken", "revokeToken", "createAuthCode", "createPlugin"} {
		var route *routers.Route
		for path, item := range spec.Paths.Map() {
			for method, op := range item.Operations() {
				if op.OperationID == id {
					route = &routers.Route{Spec: spec, Path: path, PathItem: item, Method: method, Operation: op}
				}
			}
		}
		if route == nil {
			t.Fatalf("no operation %s", id)
		}
		if fastpath.New(route, kinAuth(func(context.Context, *openapi3filter.AuthenticationInput) error { return nil })) != nil {
			continue
		}
		why := "a parameter or security scheme the fast path does not compile"
		if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil && rb.Value.Content.Get("application/json") != nil {
			if _, err := bodycheck.Compile(rb.Value.Content.Get("application/json").Schema); err != nil {
				why = err.Error()
			}
		}
		t.Errorf("%s no longer takes the fast path (%s): kin-openapi alone validates it, several times slower (docs/maintainers.md, \"The fast path\")", id, why)
	}
}

// TestFastPathAnswersAsKinOpenAPI sends the same requests to a server with
// the fast path and to one that sends every body to kin-openapi, and
// expects the same answers: statuses, and whole bodies where they do not
// carry fresh credentials.
func TestFastPathAnswersAsKinOpenAPI(t *testing.T) {
	t.Parallel() // slow, and on its own store: beside the other slow ones
	const admin = "fast-path-admin-token-0123456789"
	type side struct {
		url    string
		plugin string
		secret string
		token  string
	}
	start := func(kinOnly bool) *side {
		db, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		auth, err := StaticTokens(admin)
		if err != nil {
			t.Fatal(err)
		}
		// One clock for both servers: their answers carry times.
		now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
		s, err := New(Config{Config: core.Config{Store: db, Logger: slog.New(slog.DiscardHandler), Now: now}, Admin: auth})
		if err != nil {
			t.Fatal(err)
		}
		s.kinOnly = kinOnly
		e, err := s.Handler()
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(e)
		t.Cleanup(ts.Close)
		p, err := s.CreatePlugin(t.Context(), "Chart", nil)
		if err != nil {
			t.Fatal(err)
		}
		code, err := s.IssueAuthCode(t.Context(), p.ID, "bse1", "")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.Exchange(t.Context(), p.ID, core.TokenRequest{BaseID: "bse1", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
		if err != nil {
			t.Fatal(err)
		}
		return &side{url: ts.URL, plugin: p.ID, secret: p.Secret, token: tok.AccessToken}
	}
	fast, kin := start(false), start(true)

	bodies := []string{
		`{"baseId":"bse1","secret":"SECRET","scopes":["table|read"],"authCode":"pac_x","logo":{"url":"x"}}`,
		`{"baseId":"","secret":"SECRET","scopes":["table|read"],"authCode":"c"}`,
		`{"baseId":"bse1","secret":"SECRET","scopes":[],"authCode":"c"}`,
		`{"baseId":"bse1","secret":"SECRET","scopes":["nope"],"authCode":"c"}`,
		`{"baseId":null,"secret":"SECRET","scopes":["table|read"],"authCode":"c"}`,
		`{"BaseId":"bse1","secret":"SECRET","scopes":["table|read"],"authCode":"c"}`,
		`{"baseId":"bse1","baseId":"bse2","secret":"SECRET","scopes":["table|read"],"authCode":"c"}`,
		`{"token":"TOKEN"}`, `{"token":"pta_garbage"}`, `{"token":""}`, `{"token":7}`, `{"token":"TOKEN","x":[1,{"y":null}]}`,
		`{"name":"Chart","scopes":["table|read"]}`, `{"name":""}`, `{"name":"x","scopes":["nope"]}`, `{"name":"` + strings.Repeat("é", 201) + `"}`,
		`{"refreshToken":"ptr_x","secret":"SECRET"}`, `{"baseId":"bse1","subject":"usr1"}`, `{"baseId":"bse1","subject":7}`,
		`{"token":"TOKEN","pluginId":"PLUGIN","secret":"SECRET"}`, `{}`, `[]`, `null`, `"x"`, ``, ` `,
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 150 { // mutations: a key dropped, a value's type changed
		var m map[string]any
		if json.Unmarshal([]byte(bodies[rng.IntN(len(bodies))]), &m) != nil || len(m) == 0 {
			continue
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(4) {
		case 0:
			delete(m, k)
		case 1:
			m[k] = []any{m[k]}
		case 2:
			m[k] = nil
		default:
			m[k] = fmt.Sprint(m[k])
		}
		b, _ := json.Marshal(m)
		bodies = append(bodies, string(b))
	}

	type route struct{ method, path, bearer string }
	routes := []route{
		{"POST", "/api/plugin/PLUGIN/token", ""},
		{"GET", "/api/plugin/PLUGIN/token", ""},
		{"POST", "/api/plugin/pluNOPE/token", ""},
		{"POST", "/api/plugin/%20/token", ""},
		{"POST", "/api/plugin/%2F/token", ""},
		{"POST", "/api/plugin//token", ""},
		{"POST", "/api/plugin/PLUGIN/authCode", "wrong"},
		{"POST", "/api/plugin/%20/authCode", admin},
		{"POST", "/api/plugin//authCode", ""},
		{"POST", "/api/plugin/PLUGIN/refreshToken", ""},
		{"POST", "/api/token/introspect", admin},
		{"POST", "/api/token/introspect", "wrong"},
		{"POST", "/api/token/introspect", ""},
		{"POST", "/api/token/revoke", admin},
		{"POST", "/api/token/revoke", ""},
		{"POST", "/api/plugin", admin},
		{"POST", "/api/plugin/PLUGIN/authCode", admin},
	}
	send := func(s *side, rt route, body string) (int, string) {
		fill := strings.NewReplacer("PLUGIN", s.plugin, "SECRET", s.secret, "TOKEN", s.token)
		req, err := http.NewRequest(rt.method, s.url+fill.Replace(rt.path), strings.NewReader(fill.Replace(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if rt.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+rt.bearer)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		out := string(b)
		if res.StatusCode/100 == 2 && !strings.Contains(rt.path, "introspect") && !strings.Contains(rt.path, "revoke") {
			// Fresh credentials and ids: compare the fields, not the values.
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				out = strings.Join(slices.Sorted(func(yield func(string) bool) {
					for k := range m {
						if !yield(k) {
							return
						}
					}
				}), ",")
			}
		}
		out = strings.NewReplacer(s.plugin, "PLUGIN", s.token, "TOKEN").Replace(out)
		return res.StatusCode, out
	}
	t.Logf("%d bodies on %d routes", len(bodies), len(routes))
	for _, rt := range routes {
		for _, body := range bodies {
			fs, fb := send(fast, rt, body)
			ks, kb := send(kin, rt, body)
			if fs != ks || fb != kb {
				t.Errorf("%s %s %s:\n fast path:   %d %s\n kin-openapi: %d %s", rt.method, rt.path, body, fs, fb, ks, kb)
			}
		}
	}
}

// TestFastSecurityAnswersAsKinOpenAPI holds the fast path's security check
// to echo-middleware's ValidateRequestFromContext (kin-openapi's
// ValidateSecurityRequirements, and its refusal turned into an answer) on
// requirements with alternatives and several schemes, for authenticators
// that accept, refuse with an *echo.HTTPError, or refuse with a plain error.
func TestFastSecurityAnswersAsKinOpenAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData([]byte(`
openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /x:
    get:
      security: [{a: [], b: [read]}, {c: []}]
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    a: {type: http, scheme: bearer}
    b: {type: http, scheme: bearer}
    c: {type: http, scheme: bearer}
`))
	if err != nil {
		t.Fatal(err)
	}
	item := doc.Paths.Value("/x")
	route := &routers.Route{Spec: doc, Path: "/x", PathItem: item, Method: http.MethodGet, Operation: item.Get}
	outcomes := map[string]func(name string) error{
		"accept": func(string) error { return nil },
		"http":   func(name string) error { return &echo.HTTPError{Code: 401, Message: "no " + name} },
		"plain":  func(name string) error { return errors.New("no " + name) },
		"only c": func(name string) error {
			return map[bool]error{true: nil, false: errors.New("no " + name)}[name == "c"]
		},
		"only a, b": func(name string) error {
			return map[bool]error{true: nil, false: errors.New("no " + name)}[name != "c"]
		},
		"mixed": func(name string) error {
			if name == "c" {
				return &echo.HTTPError{Code: 403, Message: "no c"}
			}
			return errors.New("no " + name)
		},
	}
	for name, outcome := range outcomes {
		var calls []string
		auth := func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			calls = append(calls, in.SecuritySchemeName+fmt.Sprint(in.Scopes))
			return outcome(in.SecuritySchemeName)
		}
		e := echo.New()
		fast := fastpath.New(route, kinAuth(auth))
		if fast == nil {
			t.Fatal("no fast path for the route")
		}
		calls = nil
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), httptest.NewRecorder())
		handled, got := fast.Validate(c)
		fastCalls := calls
		calls = nil
		c = e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), httptest.NewRecorder())
		want := echomiddleware.ValidateRequestFromContext(c, &foundRoute{route, c},
			&echomiddleware.Options{Options: openapi3filter.Options{AuthenticationFunc: auth}})
		if !handled || fmt.Sprint(got) != fmt.Sprint(want) || (got == nil) != (want == nil) || !slices.Equal(fastCalls, calls) {
			t.Errorf("%s: fast path %v (calls %v), kin-openapi %v (calls %v)", name, got, fastCalls, want, calls)
		}
	}
}

// kinAuth calls a kin-openapi AuthenticationFunc as echo-middleware does:
// with the echo context on the context under echo-middleware's key, and
// the request as the validation input.
func kinAuth(auth openapi3filter.AuthenticationFunc) fastpath.Auth {
	return func(c echo.Context, name string, scheme *openapi3.SecurityScheme, scopes []string) error {
		//lint:ignore SA1029 the authenticator finds the echo context under echo-middleware's own key, a string.
		ctx := context.WithValue(context.Background(), echomiddleware.EchoContextKey, c) //nolint:staticcheck // as above (golangci-lint's spelling)
		return auth(ctx, &openapi3filter.AuthenticationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: c.Request()},
			SecuritySchemeName:     name, SecurityScheme: scheme, Scopes: scopes,
		})
	}
}

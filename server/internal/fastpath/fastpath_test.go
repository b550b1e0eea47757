package fastpath_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"

	"github.com/plugintoken/plugintoken/server/internal/bodycheck"
	"github.com/plugintoken/plugintoken/server/internal/fastpath"
)

// The operation the differential tests hold the fast path to kin-openapi
// on: a path parameter, a JSON body and a bearer requirement, each with the
// rules the served document uses.
const doc = `
openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /p/{id}:
    post:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, minLength: 3, maxLength: 8}}
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string, minLength: 1, maxLength: 5}
                tags: {type: array, maxItems: 2, items: {type: string, enum: [a, "b|c"]}}
                note: {type: string, nullable: true}
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`

type fixture struct {
	route *routers.Route
	fast  *fastpath.Route
}

func newFixture(t testing.TB) *fixture {
	d, err := openapi3.NewLoader().LoadFromData([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	item := d.Paths.Value("/p/{id}")
	route := &routers.Route{Spec: d, Path: "/p/{id}", PathItem: item, Method: http.MethodPost, Operation: item.Post}
	fast := fastpath.New(route, func(c echo.Context, _ string, _ *openapi3.SecurityScheme, _ []string) error {
		return authorize(c.Request())
	})
	if fast == nil {
		t.Fatal("the operation does not take the fast path")
	}
	return &fixture{route, fast}
}

// authorize is both sides' authenticator: "Bearer ok" passes.
func authorize(r *http.Request) error {
	if r.Header.Get("Authorization") != "Bearer ok" {
		return &echo.HTTPError{Code: http.StatusUnauthorized, Message: "no"}
	}
	return nil
}

// parsedBody is a body read and parsed ahead, as package server's is.
type parsedBody struct {
	*bytes.Reader
	value  any
	parsed bool
}

func (*parsedBody) Close() error { return nil }
func (b *parsedBody) ParsedJSON() (any, bool) {
	return b.value, b.parsed && b.Len() == int(b.Size())
}

// router answers kin-openapi with the one route and Echo's parameters.
type router struct {
	route *routers.Route
	c     echo.Context
}

func (r router) FindRoute(*http.Request) (*routers.Route, map[string]string, error) {
	v := r.c.Param("id")
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	return r.route, map[string]string{"id": v}, nil
}

func (f *fixture) context(rawID string, body []byte, bearer bool, parse bool) echo.Context {
	req := httptest.NewRequest(http.MethodPost, "/p/x", nil)
	pb := &parsedBody{Reader: bytes.NewReader(body)}
	if parse {
		pb.value, pb.parsed = bodycheck.Parse(body)
	}
	req.Body = pb
	req.Header.Set("Content-Type", "application/json")
	if bearer {
		req.Header.Set("Authorization", "Bearer ok")
	}
	c := echo.New().NewContext(req, httptest.NewRecorder())
	c.SetParamNames("id")
	c.SetParamValues(rawID)
	return c
}

// validateAsKin holds Route.Validate to echo-middleware's validation (kin-
// openapi) of the same request: what the fast path decides, kin-openapi
// decides the same way, with the same value bound for the handler or the
// same refusal.
func (f *fixture) validateAsKin(t *testing.T, rawID string, body []byte, bearer bool) {
	t.Helper()
	c := f.context(rawID, body, bearer, true)
	handled, err := f.fast.Validate(c)
	if !handled {
		return
	}
	k := f.context(rawID, body, bearer, false)
	want := echomiddleware.ValidateRequestFromContext(k, router{f.route, k}, &echomiddleware.Options{
		Options: openapi3filter.Options{KeepValidatedValue: true, AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			return authorize(in.RequestValidationInput.Request)
		}},
	})
	switch {
	case err == nil && want != nil:
		t.Fatalf("id %q body %q bearer %v: the fast path accepted, kin-openapi refuses: %v", rawID, body, bearer, want)
	case err != nil && fmt.Sprint(err) != fmt.Sprint(want):
		t.Fatalf("id %q body %q bearer %v: the fast path refused with %v, kin-openapi with %v", rawID, body, bearer, err, want)
	case err == nil:
		got := c.Request().Body.(interface{ ValidatedValue() any }).ValidatedValue()
		kept := k.Request().Body.(interface{ ValidatedValue() any }).ValidatedValue()
		if !reflect.DeepEqual(got, kept) {
			t.Fatalf("id %q body %q: the fast path bound %#v, kin-openapi %#v", rawID, body, got, kept)
		}
	}
}

var seeds = []struct {
	id   string
	body string
}{
	{"abc", `{"name":"x"}`}, {"abcdefgh", `{"name":"xxxxx","tags":["a","b|c"],"note":null}`},
	{"ab", `{"name":"x"}`}, {"abcdefghi", `{"name":"x"}`}, {"%20%20%20", `{"name":"x"}`}, {"a%2Fb", `{"name":"x"}`},
	{"%zz", `{"name":"x"}`}, {"", `{"name":"x"}`}, {"éé", `{"name":"x"}`}, {"abc", `{"name":""}`},
	{"abc", `{"name":"xxxxxx"}`}, {"abc", `{"tags":["a"]}`}, {"abc", `{"name":"x","tags":["a","a","a"]}`},
	{"abc", `{"name":"x","tags":["d"]}`}, {"abc", `{"name":"x","note":1}`}, {"abc", `{"name":"x","x":{}}`},
	{"abc", `{"name":"x","name":"y"}`}, {"abc", `[]`}, {"abc", `null`}, {"abc", ``}, {"abc", `{"name":"𝄞𝄞𝄞𝄞𝄞"}`},
}

// FuzzValidate is the fast path's differential target (make fuzz).
func FuzzValidate(f *testing.F) {
	for _, s := range seeds {
		f.Add(s.id, []byte(s.body), true)
		f.Add(s.id, []byte(s.body), false)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, id string, body []byte, bearer bool) {
		fx.validateAsKin(t, id, body, bearer)
	})
}

// TestValidateAnswersAsKinOpenAPI is FuzzValidate's property on generated
// requests: valid ones, and near misses of each rule.
func TestValidateAnswersAsKinOpenAPI(t *testing.T) {
	fx := newFixture(t)
	rng := rand.New(rand.NewPCG(28, 3))
	pieces := []string{"a", "Z", "9", "é", "%20", "%2F", "%", "%zz", "𝄞", "-", "|"}
	names := []any{"x", "xxxxx", "", "xxxxxx", 1, nil, "é𝄞"}
	tags := []any{[]any{}, []any{"a"}, []any{"a", "b|c"}, []any{"a", "a", "a"}, []any{"d"}, "a", nil}
	handled := 0
	for range 2000 {
		var id strings.Builder
		for range rng.IntN(10) {
			id.WriteString(pieces[rng.IntN(len(pieces))])
		}
		m := map[string]any{}
		if rng.IntN(10) > 0 {
			m["name"] = names[rng.IntN(len(names))]
		}
		if rng.IntN(2) == 0 {
			m["tags"] = tags[rng.IntN(len(tags))]
		}
		if rng.IntN(3) == 0 {
			m["note"] = []any{nil, "n", 3}[rng.IntN(3)]
		}
		if rng.IntN(10) == 0 {
			m["other"] = true
		}
		body, _ := json.Marshal(m)
		bearer := rng.IntN(5) > 0
		fx.validateAsKin(t, id.String(), body, bearer)
		if h, _ := fx.fast.Validate(fx.context(id.String(), body, bearer, true)); h {
			handled++
		}
	}
	if handled == 0 {
		t.Error("the fast path decided none of the generated requests: the test proves nothing")
	}
}

package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/plugintoken/plugintoken/gen"
)

func TestRoutesOutsideTheSpec(t *testing.T) {
	h := newHarness(t)
	t.Run("Healthz", func(t *testing.T) {
		res, body := h.do("GET", "/healthz", "", "")
		if res.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` ||
			!strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("status = %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	})
	t.Run("OpenAPIJSON", func(t *testing.T) {
		res, body := h.do("GET", "/api/openapi.json", "", "")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", res.StatusCode)
		}
		doc, err := openapi3.NewLoader().LoadFromData(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := doc.Validate(ctx); err != nil {
			t.Errorf("served spec is invalid: %v", err)
		}
		if got := doc.Servers[0].URL; got != "/api/" {
			t.Errorf("servers[0] = %q, want the local mount point", got)
		}
		for _, op := range []string{"getPluginToken", "postPluginToken", "createPlugin", "createAuthCode"} {
			if !bytes.Contains(body, []byte(`"`+op+`"`)) {
				t.Errorf("served spec lacks %s", op)
			}
		}
	})
	t.Run("ErrUnknownRoute", func(t *testing.T) {
		for _, path := range []string{"/api/nope", "/nope"} {
			res, body := h.do("GET", path, "", "")
			checkError(t, res.StatusCode, body, http.StatusNotFound, "not_found", "")
		}
	})
	t.Run("ErrWrongMethod", func(t *testing.T) {
		res, body := h.do("PUT", "/api/plugin/plu1/token", "application/json", "{}")
		checkError(t, res.StatusCode, body, http.StatusMethodNotAllowed, "method_not_allowed", "")
	})
}

// TestTokenTwinsMatch: the token operation's GET and POST (one derived from
// the other by internal/specprep) and the refresh answer describe the same
// request and answer in the served document, and the token routes are
// public.
func TestTokenTwinsMatch(t *testing.T) {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	item := spec.Paths.Value("/plugin/{pluginId}/token")
	get, post := item.Get, item.Post
	if get == nil || post == nil {
		t.Fatal("token path lacks GET or POST")
	}
	pairs := map[string][2]any{
		"request body": {get.RequestBody.Value.Content.Get("application/json").Schema.Value,
			post.RequestBody.Value.Content.Get("application/json").Schema.Value},
		"200 body": {get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value,
			post.Responses.Status(200).Value.Content.Get("application/json").Schema.Value},
		"parameters": {get.Parameters, post.Parameters},
		"refresh 200 body": {get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value,
			spec.Paths.Value("/plugin/{pluginId}/refreshToken").Post.Responses.Status(200).Value.Content.Get("application/json").Schema.Value},
	}
	for name, p := range pairs {
		if a, b := withoutExtensions(t, p[0]), withoutExtensions(t, p[1]); !reflect.DeepEqual(a, b) {
			t.Errorf("GET and POST %s differ:\nGET  %v\nPOST %v", name, a, b)
		}
	}
	if get.Security != nil && len(*get.Security) != 0 || post.Security != nil && len(*post.Security) != 0 {
		t.Errorf("token routes must be public (the secret is the credential)")
	}
}

// withoutExtensions is v as generic JSON without x- keys.
func withoutExtensions(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if strings.HasPrefix(k, "x-") {
					delete(v, k)
				} else {
					v[k] = strip(x)
				}
			}
		case []any:
			for i := range v {
				v[i] = strip(v[i])
			}
		}
		return v
	}
	return strip(out)
}

// TestNoPlaintextAtRest writes every kind of credential, then scans the
// database file and the logs for any of them.
func TestNoPlaintextAtRest(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	spent := h.authCode(p.ID, "bse1")
	unused := h.authCode(p.ID, "bse1")
	tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, spent, "table|read")).JSON200
	if tok == nil {
		t.Fatal("exchange failed")
	}
	_ = h.exchange(p.ID, tokenRequest("bse1", "wrong-"+p.Secret, unused, "table|read"))
	_ = h.exchange(p.ID, tokenRequest("bse1", p.Secret, spent, "table|read"))
	p2 := h.createPlugin()
	regen, err := h.admin.RegeneratePluginSecretWithResponse(ctx, p2.ID)
	if err != nil || regen.JSON200 == nil {
		t.Fatal("regenerate failed")
	}
	path := h.db.Path()
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	secrets := map[string]string{
		"plugin secret": p.Secret, "old secret": p2.Secret, "regenerated secret": regen.JSON200.Secret,
		"redeemed code": spent, "unused code": unused,
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken, "admin token": adminToken,
	}
	for what, s := range secrets {
		// The random part alone, so that a stored suffix would be caught too.
		body := s[len(s)-min(30, len(s)):]
		if bytes.Contains(file, []byte(body)) {
			t.Errorf("database file holds the %s in plaintext", what)
		}
		if strings.Contains(logs, body) {
			t.Errorf("logs hold the %s", what)
		}
	}
	if !strings.Contains(logs, "status=200") {
		t.Errorf("no request log lines: %q", logs)
	}
}

package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
)

// The fuzz targets send arbitrary input to the real handler stack and check
// what must hold for any input: no panic, never a 5xx, and never a token or
// a code for input that should fail. Their seeds (f.Add and testdata/fuzz)
// run in the normal test suite; `go test -fuzz FuzzExchange ./server` fuzzes.

// fuzzHarness is a server without rate limits, so that a fuzzer's failures
// do not turn into 429s.
func fuzzHarness(f *testing.F) *harness {
	return newHarness(f, func(c *server.Config) { c.MaxFailures = -1 })
}

// substitute fills the placeholders a seed may use with live values.
func substitute(s string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(s)
}

func checkNo5xx(t *testing.T, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("client input answered %d: %s", status, body)
	}
	if status != http.StatusOK && status != http.StatusCreated && status != http.StatusNoContent {
		var e gen.Error
		if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Status != status {
			t.Fatalf("%d answer is not the error body: %s", status, body)
		}
	}
}

func FuzzExchange(f *testing.F) {
	h := fuzzHarness(f)
	p := h.createPlugin("table|read", "record|read")
	for _, seed := range []string{
		`{"baseId":"bse1","secret":"$SECRET","scopes":["table|read"],"authCode":"$CODE"}`,
		`{"baseId":"bse1","secret":"$SECRET","scopes":["table|read","record|read"],"authCode":"$CODE","logo":"x","positions":[1]}`,
		`{"baseId":"bse2","secret":"$SECRET","scopes":["table|read"],"authCode":"$CODE"}`,
		`{"baseId":"bse1","secret":"$SECRET","scopes":["space|create"],"authCode":"$CODE"}`,
		`{"baseId":"bse1","secret":"$SECRET","scopes":[],"authCode":"$CODE"}`,
		`{"baseId":"bse1","secret":"nope","scopes":["table|read"],"authCode":"$CODE"}`,
		`{"baseId":"bse1","secret":"$SECRET","scopes":["table|read"],"authCode":"ptc_AAAA"}`,
		`{"baseId":1,"secret":null,"scopes":"table|read"}`,
		`[]`, `null`, `{`, ``, `"\u0000"`, `{"baseId":"bse1","baseId":"bse2"}`,
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, body string, post bool) {
		h := h.on(t)
		code := h.authCode(p.ID, "bse1")
		body = substitute(body, "$SECRET", p.Secret, "$CODE", code)
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		res, raw := h.do(method, "/api/plugin/"+p.ID+"/token", "application/json", body)
		checkNo5xx(t, res.StatusCode, raw)
		if res.StatusCode == http.StatusOK && !validExchange(body, p, code) {
			t.Fatalf("a token was issued for %q", body)
		}
	})
}

// validExchange is what a request must be to earn a token.
func validExchange(body string, p gen.PluginWithSecret, code string) bool {
	var req map[string]any
	if json.Unmarshal([]byte(body), &req) != nil {
		return false
	}
	if req["baseId"] != "bse1" || req["secret"] != p.Secret || req["authCode"] != code {
		return false
	}
	scopes, ok := req["scopes"].([]any)
	if !ok || len(scopes) == 0 {
		return false
	}
	for _, s := range scopes {
		str, ok := s.(string)
		if !ok || !slices.Contains(p.Scopes, str) {
			return false
		}
	}
	return true
}

func FuzzRefresh(f *testing.F) {
	h := fuzzHarness(f)
	p := h.createPlugin("table|read")
	for _, seed := range []string{
		`{"refreshToken":"$REFRESH","secret":"$SECRET"}`,
		`{"refreshToken":"$ACCESS","secret":"$SECRET"}`,
		`{"refreshToken":"$REFRESH","secret":"x"}`,
		`{"refreshToken":"ptr_","secret":"$SECRET"}`,
		`{"refreshToken":null}`, `{}`, `[1]`, `{"refreshToken":"$REFRESH$REFRESH","secret":"$SECRET"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h := h.on(t)
		tok := h.token(p, "table|read")
		body = substitute(body, "$SECRET", p.Secret, "$REFRESH", tok.RefreshToken, "$ACCESS", tok.AccessToken)
		res, raw := h.do(http.MethodPost, "/api/plugin/"+p.ID+"/refreshToken", "application/json", body)
		checkNo5xx(t, res.StatusCode, raw)
		if res.StatusCode == http.StatusOK {
			var req map[string]any
			if json.Unmarshal([]byte(body), &req) != nil || req["refreshToken"] != tok.RefreshToken || req["secret"] != p.Secret {
				t.Fatalf("a token was issued for %q", body)
			}
		}
	})
}

func FuzzAuthCode(f *testing.F) {
	h := fuzzHarness(f)
	p := h.createPlugin()
	for _, seed := range []string{`{"baseId":"bse1"}`, `{"baseId":""}`, `{"baseId":7}`, `{}`, `{"baseId":"` + strings.Repeat("b", 300) + `"}`, `x`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h := h.on(t)
		res, raw := h.do(http.MethodPost, "/api/plugin/"+p.ID+"/authCode", "application/json", body, "Authorization", "Bearer "+adminToken)
		checkNo5xx(t, res.StatusCode, raw)
		if res.StatusCode == http.StatusOK {
			var req map[string]any
			if json.Unmarshal([]byte(body), &req) != nil {
				t.Fatalf("a code was issued for %q", body)
			}
			if base, ok := req["baseId"].(string); !ok || base == "" {
				t.Fatalf("a code was issued for %q", body)
			}
		}
	})
}

func FuzzIntrospect(f *testing.F) {
	h := fuzzHarness(f)
	p := h.createPlugin()
	live := h.token(p, "table|read")
	for _, seed := range []string{live.AccessToken, live.RefreshToken, "pta_", "ptr_" + strings.Repeat("A", 75), p.Secret, "", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		h := h.on(t)
		body, _ := json.Marshal(map[string]string{"token": token})
		res, raw := h.do(http.MethodPost, "/api/token/introspect", "application/json", string(body), "Authorization", "Bearer "+adminToken)
		checkNo5xx(t, res.StatusCode, raw)
		var in gen.Introspection
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatal(err)
			}
			if in.Active && token != live.AccessToken && token != live.RefreshToken {
				t.Fatalf("%q introspects active", token)
			}
		}
	})
}

func FuzzParseCredential(f *testing.F) {
	for _, seed := range []string{"pta_", "ptc_" + strings.Repeat("A", 75), "ptr_" + strings.Repeat("_", 75), "pta_" + strings.Repeat("=", 75), "", "ptaX",
		"pta_" + strings.Repeat("A", 74) + "B"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref := server.RefOf(s) // must not panic
		if ref.Key == ([24]byte{}) && ref.Secret == ([32]byte{}) {
			return
		}
		// A string that parses has exactly one spelling: encoding what it
		// decodes to gives it back.
		prefix, body := s[:4], s[4:]
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || prefix+base64.RawURLEncoding.EncodeToString(raw) != s {
			t.Fatalf("%q parsed, but is not the canonical spelling of what it decodes to", s)
		}
		if !bytes.Equal(raw[:24], ref.Key[:]) || sha256.Sum256(raw[24:]) != ref.Secret {
			t.Fatalf("%q parsed to another key or secret than it holds", s)
		}
	})
}

// FuzzCredentialRoundTrip: any key and secret make a credential that parses
// back to exactly that key and the secret's hash.
func FuzzCredentialRoundTrip(f *testing.F) {
	f.Add([]byte("0123456789abcdef01234567"), []byte("0123456789abcdef0123456789abcdef"), byte(0))
	f.Fuzz(func(t *testing.T, key, secret []byte, kind byte) {
		if len(key) != 24 || len(secret) != 32 {
			return
		}
		prefix := []string{core.PrefixAccessToken, core.PrefixRefreshToken, core.PrefixAuthCode}[int(kind)%3]
		s := prefix + base64.RawURLEncoding.EncodeToString(append(slices.Clone(key), secret...))
		ref := server.RefOf(s)
		if !bytes.Equal(ref.Key[:], key) || ref.Secret != sha256.Sum256(secret) {
			t.Fatalf("%q did not parse back to its key and secret", s)
		}
	})
}

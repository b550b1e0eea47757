package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
)

// TestBodyStrictJSON: bodies that Go's JSON decoding accepts only by
// ignoring or changing bytes are refused with 400, and no code is consumed.
func TestBodyStrictJSON(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	for name, tc := range map[string]struct {
		body func(code string) string
		msg  string
	}{
		"ErrTrailingGarbage": {func(code string) string { return tokenRequest("bse1", p.Secret, code, "table|read") + " not json" }, "Request body must be exactly one JSON value"},
		"ErrSecondValue":     {func(code string) string { return tokenRequest("bse1", p.Secret, code, "table|read") + "{}" }, "Request body must be exactly one JSON value"},
		"ErrInvalidUTF8": {func(code string) string {
			return strings.Replace(tokenRequest("bse1", p.Secret, code, "table|read"), `"bse1"`, "\"bse\xff\"", 1)
		}, "Request body is not valid UTF-8"},
		"ErrLoneSurrogate": {func(code string) string {
			return strings.Replace(tokenRequest("bse1", p.Secret, code, "table|read"), `"bse1"`, `"bse\ud800"`, 1)
		}, `Request body has a \u escape that is no character (a lone surrogate)`},
		"ErrLoneLowSurrogate": {func(code string) string {
			return strings.Replace(tokenRequest("bse1", p.Secret, code, "table|read"), `"bse1"`, `"bse\udc00x"`, 1)
		}, `Request body has a \u escape that is no character (a lone surrogate)`},
	} {
		t.Run(name, func(t *testing.T) {
			code := h.authCode(p.ID, "bse1")
			res, body := h.do("POST", "/api/plugin/"+p.ID+"/token", "application/json", tc.body(code))
			checkError(t, res.StatusCode, body, http.StatusBadRequest, "validation_error", tc.msg)
			// The code was not touched: it still redeems.
			if ok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, "table|read")); ok.StatusCode() != 200 {
				t.Errorf("the code was consumed by a refused body: %d %s", ok.StatusCode(), ok.Body)
			}
		})
	}
	t.Run("ValidSurrogatePairAccepted", func(t *testing.T) {
		code := h.authCode(p.ID, "bse\U0001F600")
		body := strings.Replace(tokenRequest("bse1", p.Secret, code, "table|read"), `"bse1"`, `"bse\ud83d\ude00"`, 1)
		if res, b := h.do("POST", "/api/plugin/"+p.ID+"/token", "application/json", body); res.StatusCode != 200 {
			t.Errorf("an escaped surrogate pair was refused: %d %s", res.StatusCode, b)
		}
	})
	t.Run("TwoInvalidBasesAreNotOne", func(t *testing.T) {
		// A code for "bse\xfe" must never be redeemed as "bse\xff": both
		// are refused before anything is decoded.
		res, body := h.do("POST", "/api/plugin/"+p.ID+"/authCode", "application/json", "{\"baseId\":\"bse\xfe\"}", "Authorization", "Bearer "+adminToken)
		checkError(t, res.StatusCode, body, http.StatusBadRequest, "validation_error", "Request body is not valid UTF-8")
	})
}

// TestLifetimeBounds: a lifetime whose expiry cannot be stored is refused
// by New with a clear error (it used to issue tokens inactive at once).
func TestLifetimeBounds(t *testing.T) {
	h := newHarness(t)
	for name, set := range map[string]func(*server.Config, time.Duration){
		"AuthCode": func(c *server.Config, d time.Duration) { c.AuthCodeTTL = d },
		"Access":   func(c *server.Config, d time.Duration) { c.AccessTokenTTL = d },
		"Refresh":  func(c *server.Config, d time.Duration) { c.RefreshTokenTTL = d },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := server.Config{Config: core.Config{Store: h.db}, Admin: func(*http.Request, string) (string, error) { return "", nil }}
			set(&cfg, 2_500_000*time.Hour)
			_, err := server.New(cfg)
			if err == nil || !strings.Contains(err.Error(), "2500000h") || !strings.Contains(err.Error(), "longest supported") {
				t.Errorf("New with a 2,500,000 h lifetime: err = %v, want a refusal naming it", err)
			}
		})
	}
}

// TestDocsFolderURL: /docs/ (where /docs/index.html sends a browser) must
// not serve the page's unrendered template.
func TestDocsFolderURL(t *testing.T) {
	h := newHarness(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(h.url + "/docs/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/docs" {
		t.Errorf("/docs/: %d Location %q, want a redirect to /docs", res.StatusCode, res.Header.Get("Location"))
	}
	res2, body := h.do("GET", "/docs/", "", "")
	if res2.StatusCode != 200 || strings.Contains(string(body), "{{") {
		t.Errorf("following /docs/ gave %d and a template: %.200s", res2.StatusCode, body)
	}
}

// TestBindsWhatWasValidated: the handler acts on the values the validator
// checked. Go's JSON decoding matches keys case-insensitively and keeps the
// last, so {"name":"ok","NAME":<too long>} used to pass validation on
// "name" and register the long "NAME".
func TestBindsWhatWasValidated(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("x", 300)
	res, body := h.do("POST", "/api/plugin", "application/json", `{"name":"Chart","NAME":"`+long+`"}`, "Authorization", "Bearer "+adminToken)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d %s", res.StatusCode, body)
	}
	if strings.Contains(string(body), long) || !strings.Contains(string(body), `"name":"Chart"`) {
		t.Errorf("registered another name than the one validated: %s", body)
	}
	p := h.createPlugin()
	code := h.authCode(p.ID, "bse1")
	// The validated base is bse1; a second spelling of the key must not
	// redirect the exchange to another base.
	res, body = h.do("POST", "/api/plugin/"+p.ID+"/token", "application/json",
		`{"baseId":"bse1","BaseID":"bse2","secret":"`+p.Secret+`","scopes":["table|read"],"authCode":"`+code+`"}`)
	if res.StatusCode != http.StatusOK {
		t.Errorf("exchange for the validated base: %d %s", res.StatusCode, body)
	}
}

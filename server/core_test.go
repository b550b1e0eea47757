package server_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/server/core"
)

// TestCoreValidatesAndCopies: the in-process service refuses what the HTTP
// validator refuses, with the same code, and hands out copies.
func TestCoreValidatesAndCopies(t *testing.T) {
	h := newHarness(t)
	p, err := h.srv.CreatePlugin(ctx, "Chart", []string{"table|read"})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"EmptyName": func() error { _, err := h.srv.CreatePlugin(ctx, "", nil); return err }(),
		"EmptyBase": func() error { _, err := h.srv.IssueAuthCode(ctx, p.ID, "", ""); return err }(),
		"EmptySecret": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "b", AuthCode: "c", Scopes: []string{"table|read"}})
			return err
		}(),
		"NoScopes": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "b", Secret: "s", AuthCode: "c"})
			return err
		}(),
		"BadScope": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "b", Secret: "s", AuthCode: "c", Scopes: []string{"nope|x"}})
			return err
		}(),
	} {
		var e *core.Error
		if !errors.As(err, &e) || e.Code != core.CodeValidation {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	code, err := h.srv.IssueAuthCode(ctx, p.ID, "bse1", "")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := h.srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bse1", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
	if err != nil {
		t.Fatal(err)
	}
	who, err := h.srv.Authenticate(ctx, pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	who.Scopes[0] = "record|delete"
	in, err := h.srv.Introspect(ctx, pair.AccessToken)
	if err != nil || !in.Active || in.Scopes[0] != "table|read" {
		t.Fatalf("introspection after editing the principal: %+v %v", in, err)
	}
	in.Scopes[0] = "record|delete"
	if again, _ := h.srv.Authenticate(ctx, pair.AccessToken); again.Scopes[0] != "table|read" {
		t.Errorf("editing an introspection changed the token: %v", again.Scopes)
	}
	var refused *core.Error
	if _, err := h.srv.Authenticate(ctx, pair.RefreshToken); !errors.As(err, &refused) || refused.Code != core.CodeUnauthorized {
		t.Error("a refresh token authenticated as an access token")
	}
	if err := h.srv.RevokeTokenAsPlugin(ctx, pair.RefreshToken, p.ID, "wrong"); !errors.As(err, &refused) || refused.Message != "Invalid secret" {
		t.Error("revocation with a wrong secret succeeded")
	}
	if err := h.srv.RevokeToken(ctx, pair.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Authenticate(ctx, pair.AccessToken); !errors.As(err, &refused) || refused.Code != core.CodeUnauthorized {
		t.Error("the access token survived an admin's revocation of its refresh token")
	}
}

// TestSubject: a code issued for a subject (over HTTP or in-process) gives
// tokens that carry it, through rotation, to the principal, introspection
// (sub) and the audit lines.
func TestSubject(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	res, body := h.do("POST", "/api/plugin/"+p.ID+"/authCode", "application/json", `{"baseId":"bse1","subject":"alice@example.com"}`,
		"Authorization", "Bearer "+adminToken)
	var code struct{ Code string }
	if res.StatusCode != 200 || json.Unmarshal(body, &code) != nil {
		t.Fatalf("auth code with a subject: %d %s", res.StatusCode, body)
	}
	tok := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code.Code, "table|read"))
	if tok.JSON200 == nil {
		t.Fatalf("exchange: %d %s", tok.StatusCode(), tok.Body)
	}
	rotated := h.refresh(p.ID, p.Secret, tok.JSON200.RefreshToken)
	if rotated.JSON200 == nil {
		t.Fatalf("refresh: %d %s", rotated.StatusCode(), rotated.Body)
	}
	if in := h.introspect(rotated.JSON200.AccessToken); in.Sub == nil || *in.Sub != "alice@example.com" {
		t.Errorf("introspection after a rotation: sub = %v", in.Sub)
	}
	who, err := h.srv.Authenticate(ctx, rotated.JSON200.AccessToken)
	if err != nil || who.Subject != "alice@example.com" {
		t.Errorf("principal: %+v %v", who, err)
	}
	if l := grepLines(h.logs.String(), "auth code issued"); !strings.Contains(l, "subject=alice@example.com") {
		t.Errorf("issuing a code is not audited with its subject: %q", l)
	}
	// Without a subject, introspection has no sub at all.
	plain := h.token(p, "table|read")
	if in := h.introspect(plain.AccessToken); in.Sub != nil {
		t.Errorf("sub without a subject: %q", *in.Sub)
	}
}

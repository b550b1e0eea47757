package server_test

import (
	"errors"
	"testing"

	"github.com/plugintoken/plugintoken/server"
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
		"EmptyBase": func() error { _, err := h.srv.IssueAuthCode(ctx, p.ID, " "); return err }(),
		"EmptySecret": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, server.TokenRequest{BaseID: "b", AuthCode: "c", Scopes: []string{"table|read"}})
			return err
		}(),
		"NoScopes": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, server.TokenRequest{BaseID: "b", Secret: "s", AuthCode: "c"})
			return err
		}(),
		"BadScope": func() error {
			_, err := h.srv.Exchange(ctx, p.ID, server.TokenRequest{BaseID: "b", Secret: "s", AuthCode: "c", Scopes: []string{"nope|x"}})
			return err
		}(),
	} {
		var e *server.Error
		if !errors.As(err, &e) || e.Code != server.CodeValidation {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	code, err := h.srv.IssueAuthCode(ctx, p.ID, "bse1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := h.srv.Exchange(ctx, p.ID, server.TokenRequest{BaseID: "bse1", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
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
	if _, err := h.srv.Authenticate(ctx, pair.RefreshToken); err == nil {
		t.Error("a refresh token authenticated as an access token")
	}
	if err := h.srv.RevokeTokenAsPlugin(ctx, pair.RefreshToken, p.ID, "wrong"); err == nil {
		t.Error("revocation with a wrong secret succeeded")
	}
	if err := h.srv.RevokeToken(ctx, pair.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Authenticate(ctx, pair.AccessToken); err == nil {
		t.Error("the access token survived an admin's revocation of its refresh token")
	}
}

package server_test

import (
	"net/http"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
)

// TestOneSpellingPerToken: a token's secret presented with the other
// kind's prefix ("pta_" + a refresh token's rest, or "ptr_" + an access
// token's) is unknown to introspection, revocation, refresh and the gateway
// middleware; it used to introspect as an active refresh token, and revoke.
func TestOneSpellingPerToken(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	pair := h.token(p, "table|read")
	refreshAsAccess := "pta_" + pair.RefreshToken[4:]
	accessAsRefresh := "ptr_" + pair.AccessToken[4:]
	h.checkActive(false, refreshAsAccess, accessAsRefresh)
	if res := h.refresh(p.ID, p.Secret, accessAsRefresh); res.StatusCode() != http.StatusBadRequest {
		t.Errorf("refresh with an access token spelled as a refresh token: %d %s", res.StatusCode(), res.Body)
	}
	for _, tok := range []string{refreshAsAccess, accessAsRefresh} {
		res, err := h.admin.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: tok})
		if err != nil || res.StatusCode() != http.StatusOK {
			t.Fatalf("revoke: %v %d", err, res.StatusCode())
		}
	}
	h.checkActive(true, pair.AccessToken, pair.RefreshToken)
	if _, err := h.srv.Authenticate(ctx, refreshAsAccess); err == nil {
		t.Error("Authenticate accepted a refresh token spelled as an access token")
	}
}

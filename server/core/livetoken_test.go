package core_test

import (
	"testing"

	"github.com/plugintoken/plugintoken/server/core"
)

// TestZeroLiveTokenGrantsNothing: a LiveToken that no lookup returned
// (an embedder ignoring ok) grants nothing and does not panic.
func TestZeroLiveTokenGrantsNothing(t *testing.T) {
	var l core.LiveToken
	if l.HasScopes(nil) || l.HasScopes([]string{"table|read"}) || l.BaseID() != "" {
		t.Error("the zero LiveToken grants something")
	}
	if p := l.Principal(); p.PluginID != "" || p.Scopes != nil {
		t.Errorf("the zero LiveToken's principal = %+v", p)
	}
}

package server

import (
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store"
)

// RefOf parses a code or token of any kind, for tests that look it up in
// the store.
func RefOf(s string) store.Ref {
	ref, _ := core.ParseCredential(s)
	return ref
}

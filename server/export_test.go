package server

import "github.com/plugintoken/plugintoken/store"

// RefOf parses a code or token of any kind, for tests that look it up in
// the store.
func RefOf(s string) store.Ref {
	for _, prefix := range []string{PrefixAccessToken, PrefixRefreshToken, PrefixAuthCode} {
		if ref, ok := parseCredential(s, prefix); ok {
			return ref
		}
	}
	return store.Ref{}
}

package server

// The scope vocabulary the served document allows.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// difference returns what is in a but not b, and in b but not a.
func difference(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// scopeEnum returns the values the served document allows for the token
// operation's scopes, or nil when it does not enumerate them.
func scopeEnum(spec *openapi3.T) ([]string, error) {
	body := spec.Components.Schemas["PluginTokenRequest"]
	if body == nil || body.Value == nil || body.Value.Properties["scopes"] == nil {
		return nil, errors.New("server: the embedded spec has no PluginTokenRequest.scopes: regenerate gen/")
	}
	items := body.Value.Properties["scopes"].Value.Items
	if items == nil || items.Value == nil || len(items.Value.Enum) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(items.Value.Enum))
	for _, v := range items.Value.Enum {
		sc, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("server: the API document's scope enum holds %v, not a string", v)
		}
		out = append(out, sc)
	}
	return out, nil
}

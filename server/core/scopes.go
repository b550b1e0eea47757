package core

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
)

//go:embed scopes.txt
var defaultScopesFile string

// DefaultScopes returns the plugin scope vocabulary shipped with this build
// (scopes.txt), in file order.
func DefaultScopes() []string {
	v, err := ParseScopes(defaultScopesFile)
	if err != nil {
		panic(err) // scopes.txt is part of the build and covered by tests.
	}
	return v
}

// ParseScopes reads a vocabulary in the format of scopes.txt: one
// `resource|action` per line; blank lines and lines starting with # are
// ignored.
func ParseScopes(text string) ([]string, error) {
	var out []string
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		res, act, ok := strings.Cut(line, "|")
		if !ok || res == "" || act == "" || strings.ContainsAny(act, "| \t") {
			return nil, fmt.Errorf("scopes line %d: %q is not resource|action", n+1, line)
		}
		if slices.Contains(out, line) {
			return nil, fmt.Errorf("scopes line %d: %q is listed twice", n+1, line)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scopes: the vocabulary is empty")
	}
	return out, nil
}

// vocabulary is a set of scopes.
type vocabulary map[string]struct{}

func newVocabulary(scopes []string) vocabulary {
	v := make(vocabulary, len(scopes))
	for _, s := range scopes {
		v[s] = struct{}{}
	}
	return v
}

// check returns a validation error naming the first scope that is not in
// the vocabulary, or nil.
func (v vocabulary) check(scopes []string) error {
	for _, s := range scopes {
		if _, ok := v[s]; !ok {
			return Errorf(CodeValidation, "Scope %q is not a plugin scope", s)
		}
	}
	return nil
}

// dedupe returns scopes without repeats, in first-seen order.
func dedupe(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

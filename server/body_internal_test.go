package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLoneSurrogate checks hasLoneSurrogate against encoding/json itself:
// for a valid JSON text with no U+FFFD of its own, the decoder produces a
// U+FFFD exactly when the text has a lone surrogate escape.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud800"`, `"\ud83d\ude00"`, `"\udc00"`, `["\\ud800"]`, `{"k":"\ud800\u0041"}`,
		`"\\\ud800"`, `"\ud83d\\ude00"`, `"\u00e9\ud83d"`, `{"\ud800":1}`, `"\"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) || !json.Valid(b) || bytes.Contains(b, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`)) {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		got := hasLoneSurrogate(b)
		want := containsRuneError(v)
		if got != want {
			t.Fatalf("hasLoneSurrogate(%q) = %v, but decoding gives U+FFFD: %v", b, got, want)
		}
	})
}

func containsRuneError(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, '\uFFFD')
	case []any:
		for _, e := range v {
			if containsRuneError(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, '\uFFFD') || containsRuneError(e) {
				return true
			}
		}
	}
	return false
}

package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/plugintoken/plugintoken/gen"
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

// FuzzBindValidated: for any JSON object whose keys are spelled as the
// fields' JSON names, binding the validator's decoded value gives exactly
// what encoding/json gives, for every request body type of the API; a key
// in another spelling binds nothing (encoding/json would take it).
func FuzzBindValidated(f *testing.F) {
	f.Add(`{"baseId":"b","secret":"s","scopes":["a","b"],"authCode":"c"}`)
	f.Add(`{"name":"n","scopes":null}`)
	f.Add(`{"token":"t","pluginId":"p","secret":null}`)
	f.Add(`{"baseId":"b","subject":"u","extra":{"x":[1,2.5,true]}}`)
	f.Add(`{"refreshToken":"r","secret":"s","scopes":[]}`)
	f.Fuzz(func(t *testing.T, body string) {
		if !json.Valid([]byte(body)) { // the server refuses the rest (checkBody)
			return
		}
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber() // as the validator decodes
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, newBody := range []func() any{
			func() any { return new(gen.PluginTokenRequest) }, func() any { return new(gen.CreatePluginRequest) },
			func() any { return new(gen.AuthCodeRequest) }, func() any { return new(gen.RefreshTokenRequest) },
			func() any { return new(gen.TokenRequest) }, func() any { return new(gen.RevokeRequest) },
		} {
			got, want := newBody(), newBody()
			errGot := bindValidated(got, m)
			errWant := json.Unmarshal([]byte(body), want)
			if exactKeys(m, want) && (errGot == nil) != (errWant == nil) {
				t.Fatalf("%T from %s: bind err %v, encoding/json err %v", want, body, errGot, errWant)
			}
			if exactKeys(m, want) && errGot == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%T from %s: bind %+v, encoding/json %+v", want, body, got, want)
			}
		}
	})
}

// exactKeys reports whether every key of m that names a field of dst's
// type (case-insensitively) spells its JSON name exactly.
func exactKeys(m map[string]any, dst any) bool {
	t := reflect.TypeOf(dst).Elem()
	for k := range m {
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if strings.EqualFold(k, name) && k != name {
				return false
			}
		}
	}
	return true
}

// TestReadAllBounds: readAll returns a body of up to maxBodyBytes whatever
// its declared length says, and the 413 for a longer one, also when the
// reader has more than the length declared (the limit once came from
// Echo's body-limit reader around the body, now from readAll itself).
func TestReadAllBounds(t *testing.T) {
	body := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name     string
		declared int64 // -1: unknown (chunked)
		body     string
		want     int // the length read, or -1 for the 413
	}{
		{"declared", 10, body(10), 10},
		{"declared, the limit", maxBodyBytes, body(maxBodyBytes), maxBodyBytes},
		{"chunked", -1, body(100), 100},
		{"chunked, the limit", -1, body(maxBodyBytes), maxBodyBytes},
		{"chunked, over", -1, body(maxBodyBytes + 1), -1},
		{"more than declared", 10, body(15), 15},
		{"more than declared, up to the limit", 10, body(maxBodyBytes), maxBodyBytes},
		{"more than declared, over the limit", 10, body(maxBodyBytes + 1), -1},
		{"more than declared, far over", 10, body(4 * maxBodyBytes), -1},
	} {
		r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(tc.body)))
		r.ContentLength = tc.declared
		b, err := readAll(r)
		switch {
		case tc.want < 0 && err != echo.ErrStatusRequestEntityTooLarge:
			t.Errorf("%s: %d bytes, %v; want the 413", tc.name, len(b), err)
		case tc.want >= 0 && (err != nil || len(b) != tc.want):
			t.Errorf("%s: %d bytes, %v; want %d", tc.name, len(b), err, tc.want)
		}
	}
}

// readSizes is a body that records the size of each buffer it is asked to
// fill, and gives one byte at a time.
type readSizes struct {
	sizes []int
	left  int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	if r.left == 0 {
		return 0, io.EOF
	}
	r.left--
	p[0] = '{'
	return 1, nil
}

func (r *readSizes) Close() error { return nil }

// TestReadAllGrowsAsBytesArrive: a body that declares 64 KiB gets no
// 64 KiB buffer before its bytes come: memory grows as they arrive. It
// used to allocate the declared length at once, so 8,000 connections that
// each declared 65,536 bytes and sent one pinned 636 MiB.
func TestReadAllGrowsAsBytesArrive(t *testing.T) {
	body := &readSizes{left: 1}
	r := httptest.NewRequest("POST", "/", nil)
	r.Body, r.ContentLength = body, maxBodyBytes
	_, _ = readAll(r)
	if len(body.sizes) == 0 || body.sizes[0] > preallocated {
		t.Errorf("the first read of a body declaring %d bytes asked for %v bytes: more than %d before any arrived", maxBodyBytes, body.sizes, preallocated)
	}
}

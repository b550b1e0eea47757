package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/plugintoken/plugintoken/server/core"
)

var (
	errBodyNotUTF8 = core.Errorf(core.CodeValidation, "Request body is not valid UTF-8")
	errBodyNotJSON = core.Errorf(core.CodeValidation, "Request body must be exactly one JSON value")
	errBodyEscape  = core.Errorf(core.CodeValidation, `Request body has a \u escape that is no character (a lone surrogate)`)
)

// checkBody refuses, before anything decodes it, a request body that Go's
// JSON decoding would accept only by changing it: anything after the first
// value (`{...} not json`), bytes that are not UTF-8, and \u escapes of lone
// surrogates. The decoder silently turns the last two into U+FFFD, so that
// "bse\xff" and "bse\xfe" would be one base: a code issued for one would be
// redeemed for the other. The body is already bounded by the body limit.
func checkBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err // the body limit's 413, or a broken connection
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if len(bytes.TrimSpace(body)) == 0 {
			return next(c) // the validator says what an empty body lacks
		}
		switch {
		case !utf8.Valid(body):
			return errBodyNotUTF8
		case !json.Valid(body):
			return errBodyNotJSON
		case hasLoneSurrogate(body):
			return errBodyEscape
		}
		return next(c)
	}
}

// hasLoneSurrogate reports whether a syntactically valid JSON text has a
// \u escape of a surrogate that is not half of a pair.
func hasLoneSurrogate(b []byte) bool {
	if !bytes.Contains(b, []byte(`\u`)) {
		return false
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch {
		case !inString:
			inString = b[i] == '"'
		case b[i] == '"':
			inString = false
		case b[i] == '\\':
			if b[i+1] != 'u' {
				i++ // a one-character escape: skip it
				continue
			}
			r := hex4(b[i+2 : i+6])
			i += 5
			if !utf16.IsSurrogate(r) {
				continue
			}
			// A high surrogate must be followed by an escaped low one.
			if r >= 0xDC00 || i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return true
			}
			if lo := hex4(b[i+3 : i+7]); utf16.DecodeRune(r, lo) == utf8.RuneError {
				return true
			}
			i += 6
		}
	}
	return false
}

// hex4 decodes four hex digits (json.Valid has checked them).
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/server/internal/bodycheck"
)

var (
	errBodyNotUTF8 = core.Errorf(core.CodeValidation, "Request body is not valid UTF-8")
	errBodyNotJSON = core.Errorf(core.CodeValidation, "Request body must be exactly one JSON value")
	// errBodyTruncated is a body whose JSON stops before its value ends.
	errBodyTruncated = core.Errorf(core.CodeValidation, "Request body ends before its JSON value does (cut short, or a bracket or quote left open)")
	// errBodyDuplicateName: see checkBody.
	errBodyDuplicateName = core.Errorf(core.CodeValidation, "Request body has an object with a name twice")
	errBodyEscape        = core.Errorf(core.CodeValidation, `Request body has a \u escape that is no character (a lone surrogate)`)
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
		body, err := readAll(r)
		if err != nil {
			return err // the body limit's 413, or a broken connection
		}
		_ = r.Body.Close()
		rb := &readBody{Reader: bytes.NewReader(body), b: body}
		r.Body = rb
		if len(bytes.TrimSpace(body)) == 0 {
			return next(c) // the validator says what an empty body lacks
		}
		// The fast path's parse, made here once: a body it parses is one
		// valid JSON value, and the validator's fast path takes the value
		// instead of parsing again. A body it declines is checked by
		// json.Valid, as every body once was.
		rb.value, rb.parsed = bodycheck.Parse(body)
		switch {
		case !utf8.Valid(body):
			return errBodyNotUTF8
		case !rb.parsed && !json.Valid(body):
			return notJSON(body)
		case !rb.parsed && bodycheck.HasDuplicateName(body):
			// encoding/json keeps the last of two equal names, an
			// inspector in front of the server may keep the first: the
			// two would read different requests.
			return errBodyDuplicateName
		case hasLoneSurrogate(body):
			return errBodyEscape
		}
		return next(c)
	}
}

// limitBody answers 413 for a body that declares a length over
// maxBodyBytes, before anything reads it; checkBody refuses the others
// that turn out longer while it reads them.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().ContentLength > maxBodyBytes {
			return echo.ErrStatusRequestEntityTooLarge
		}
		return next(c)
	}
}

// preallocated is the longest declared body read into one allocation made
// before it arrives: a real request is a few hundred bytes. A longer
// declared length is not trusted with memory: such a body grows its buffer
// as its bytes arrive, so that connections that declare 64 KiB and send
// nothing pin no more than a small one each.
const preallocated = 1024

// readAll reads r's body, at most maxBodyBytes of it (a longer one is
// echo.ErrStatusRequestEntityTooLarge, answered 413), in one allocation
// when it declares a short length. A body that ends before its declared
// length (or an unterminated chunked one) is errBodyCutShort, answered 400.
func readAll(r *http.Request) ([]byte, error) {
	n := r.ContentLength
	if n <= 0 || n > preallocated {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			return nil, cutShort(err)
		}
		return bounded(b, nil)
	}
	b := make([]byte, n, n+1)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return nil, cutShort(err)
	}
	// net/http's bodies end where their length says; any other reader
	// that has more is read on, up to the limit.
	m, err := r.Body.Read(b[n : n+1])
	switch {
	case m > 0:
		rest, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes-n))
		return bounded(append(b[:n+1], rest...), err)
	case err != nil && err != io.EOF:
		return nil, cutShort(err)
	}
	return b, nil
}

// notJSON says why a body is not JSON: cut short, or something else.
func notJSON(body []byte) error {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(body, &v); errors.As(err, &se) && se.Offset >= int64(len(body)) {
		return errBodyTruncated
	}
	return errBodyNotJSON
}

// errBodyCutShort answers a body that ended before it was whole: the
// client's doing (or its connection's), not the server's, so a 400 logged
// below ERROR and never counted as a server error.
var errBodyCutShort = &core.Error{Code: core.CodeValidation, Reason: "body_cut_short",
	Message: "Request body ended before it was complete (shorter than its Content-Length, or an unterminated chunked body)"}

// cutShort turns a read error of the body into errBodyCutShort (keeping
// the detail for the log), and leaves the body limit's 413 alone.
func cutShort(err error) error {
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return err
	}
	e := *errBodyCutShort
	e.Err = err
	return &e
}

// bounded is b, or the 413 when b is longer than maxBodyBytes.
func bounded(b []byte, err error) ([]byte, error) {
	switch {
	case err != nil:
		return nil, err
	case len(b) > maxBodyBytes:
		return nil, echo.ErrStatusRequestEntityTooLarge
	}
	return b, nil
}

// readBody is a request body checkBody has read: the validator takes the
// bytes from it rather than reading them again, and the fast path the value
// checkBody parsed (bodycheck.Parse), when parsed.
type readBody struct {
	*bytes.Reader
	b      []byte
	value  any
	parsed bool
}

func (*readBody) Close() error { return nil }

// ParsedJSON hands the fast path (fastpath.Parsed) the value checkBody
// parsed, while no byte of the body has been read yet.
func (rb *readBody) ParsedJSON() (any, bool) {
	return rb.value, rb.parsed && rb.Len() == len(rb.b)
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

// bindValidated sets dst (a pointer) from a body as the request validator
// decoded it (map[string]any, []any, string, json.Number, bool, nil).
// Object keys match the fields' JSON names exactly: Go's JSON decoding
// would also take another spelling of a key ("NAME" for "name"), the last
// one, which the validator never checked.
func bindValidated(dst any, v any) error {
	p := reflect.ValueOf(dst)
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return fmt.Errorf("bind: %T is not a pointer", dst)
	}
	return bindValue(p.Elem(), v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func bindValue(dst reflect.Value, v any) error {
	if v == nil { // JSON null
		dst.SetZero()
		return nil
	}
	if dst.Kind() != reflect.Pointer && dst.Kind() != reflect.Interface && reflect.PointerTo(dst.Type()).Implements(unmarshalerType) {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return dst.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw)
	}
	mismatch := func() error { return fmt.Errorf("bind: %T into %s", v, dst.Type()) }
	switch dst.Kind() {
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := bindValue(p.Elem(), v); err != nil {
			return err
		}
		dst.Set(p)
	case reflect.Interface:
		dst.Set(reflect.ValueOf(v))
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return mismatch()
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return mismatch()
		}
		dst.SetBool(b)
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch()
		}
		f, err := n.Float64()
		if err != nil || dst.OverflowFloat(f) {
			return mismatch()
		}
		dst.SetFloat(f)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch()
		}
		i, err := n.Int64()
		if err != nil || dst.OverflowInt(i) {
			return mismatch()
		}
		dst.SetInt(i)
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		s := reflect.MakeSlice(dst.Type(), len(a), len(a))
		for i := range a {
			if err := bindValue(s.Index(i), a[i]); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return mismatch()
		}
		out := reflect.MakeMapWithSize(dst.Type(), len(m))
		for k, x := range m {
			e := reflect.New(dst.Type().Elem()).Elem()
			if err := bindValue(e, x); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), e)
		}
		dst.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		t := dst.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if x, ok := m[name]; ok {
				if err := bindValue(dst.Field(i), x); err != nil {
					return err
				}
			}
		}
	default:
		return mismatch()
	}
	return nil
}

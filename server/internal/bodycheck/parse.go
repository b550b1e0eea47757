// Package bodycheck checks a JSON request body against its OpenAPI 3.0
// schema without kin-openapi's interpretive overhead, for the schemas whose
// every keyword it knows (Compile says which it does not), and kin-openapi
// stays the reference: Check answers only "valid, and this is the value
// kin-openapi would have decoded" or "not proven valid". The request
// validator asks kin-openapi whenever the answer is the second, so every
// refusal, and its message, is still kin-openapi's own. The differential
// tests hold the two to the same answers.
package bodycheck

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// maxDepth bounds the nesting Parse follows; deeper bodies are left to
// kin-openapi (and encoding/json's own limit).
const maxDepth = 32

// Parse decodes one JSON text as encoding/json does into an any with
// UseNumber: map[string]any, []any (never nil), string, json.Number, bool
// and nil. It declines (ok false) rather than guess: anything that is not
// one valid JSON value with nothing after it but white space, an object
// with a name twice (encoding/json keeps the last, its v2 refuses), and
// nesting deeper than maxDepth.
func Parse(b []byte) (v any, ok bool) {
	p := parser{b: b}
	v, ok = p.value(0)
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.i == len(p.b)
}

type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, bool) {
	p.space()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, ok := p.string()
		return s, ok
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *parser) literal(word string) bool {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

func (p *parser) object(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	p.i++ // {
	m := make(map[string]any, 4)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, false
		}
		k, ok := p.string()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		if end, ok := p.separator('}'); !ok || end {
			return m, ok
		}
	}
}

func (p *parser) array(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	p.i++ // [
	a := make([]any, 0, 4)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if end, ok := p.separator(']'); !ok || end {
			return a, ok
		}
	}
}

// separator reads what follows a member or an element: a comma (more
// follow), or closing (the end).
func (p *parser) separator(closing byte) (end, ok bool) {
	p.space()
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, true
	case closing:
		p.i++
		return true, true
	}
	return false, false
}

// string reads a string token. One without escapes that is valid UTF-8 is
// its own bytes (as encoding/json decodes it); any other is decoded by
// encoding/json itself, so that escapes, and what it makes of bytes that
// are not UTF-8, stay exactly its.
func (p *parser) string() (string, bool) {
	start := p.i
	p.i++ // "
	plain, ascii := true, true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			raw := p.b[start+1 : p.i-1]
			if plain && (ascii || utf8.Valid(raw)) {
				return string(raw), true
			}
			var s string
			if json.Unmarshal(p.b[start:p.i], &s) != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			p.i += 2
			continue
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// number reads a number token with JSON's grammar.
func (p *parser) number() (any, bool) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	return json.Number(p.b[start:p.i]), true
}

func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// HasDuplicateName reports whether a valid JSON text has an object with
// two equal names (compared as decoded: "a" and "\u0061" are equal), at any
// depth. Parse declines such a text; this says why.
func HasDuplicateName(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	// One frame per open object or array: the names seen in an object,
	// and whether the next string token is a name.
	type frame struct {
		names  map[string]bool
		isName bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.names != nil {
					top.isName = true // the object is a value: a name comes next
				}
				stack = append(stack, &frame{names: map[string]bool{}, isName: true})
			case '[':
				if top != nil && top.names != nil {
					top.isName = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.names != nil && top.isName {
				if top.names[t] {
					return true
				}
				top.names[t] = true
				top.isName = false
				continue
			}
		}
		if top != nil && top.names != nil {
			top.isName = true // a value was read: a name comes next
		}
	}
}

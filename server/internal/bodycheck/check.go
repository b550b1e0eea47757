package bodycheck

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Checker is a schema compiled for Check.
type Checker struct{ root *node }

type kind uint8

const (
	kindString kind = iota + 1
	kindBoolean
	kindArray
	kindObject
)

// node is one compiled schema. Its checks are kin-openapi's (OpenAPI 3.0,
// validating a request) for the keywords Compile admits, in the same order
// where the order decides the answer.
type node struct {
	kind     kind
	nullable bool

	enum           map[string]struct{} // nil: no enum
	minLen, maxLen int64               // maxLen < 0: none

	minItems, maxItems int64 // maxItems < 0: none
	items              *node

	props    map[string]*node
	required []string
	closed   bool // additionalProperties: false
}

// keywords are the schema keywords Compile knows. Any other (pattern,
// format, default, readOnly, allOf, minimum, ...) makes it decline: kin-
// openapi alone then validates that body.
var keywords = map[string]bool{
	"type": true, "nullable": true, "enum": true,
	"minLength": true, "maxLength": true,
	"minItems": true, "maxItems": true, "items": true,
	"properties": true, "required": true, "additionalProperties": true,
	// Annotations: kin-openapi validates nothing with them.
	"description": true, "title": true, "example": true, "deprecated": true, "externalDocs": true,
}

// ErrUnsupported is wrapped by Compile's error for a schema it cannot
// compile; the error names the keyword and where it is.
var ErrUnsupported = errors.New("bodycheck: schema not supported")

// Compile compiles an OpenAPI 3.0 request body schema. It declines (an
// error wrapping ErrUnsupported) any schema with a keyword outside its set,
// a type other than string, boolean, array or object, or a reference to
// itself.
func Compile(ref *openapi3.SchemaRef) (*Checker, error) {
	n, err := compile(ref, "#", nil)
	if err != nil {
		return nil, err
	}
	return &Checker{root: n}, nil
}

func unsupported(at, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrUnsupported, at, fmt.Sprintf(format, args...))
}

func compile(ref *openapi3.SchemaRef, at string, stack []*openapi3.Schema) (*node, error) {
	if ref == nil || ref.Value == nil {
		return nil, unsupported(at, "unresolved schema")
	}
	s := ref.Value
	if slices.Contains(stack, s) {
		return nil, unsupported(at, "a schema that contains itself")
	}
	stack = append(stack, s)
	// The keywords are read off the schema's fields, so that one kin-
	// openapi adds later is declined rather than ignored.
	if k := unknownKeyword(s); k != "" {
		return nil, unsupported(at, "keyword %q", k)
	}
	var err error
	n := &node{nullable: s.Nullable, maxLen: -1, maxItems: -1}
	if s.Type == nil || len(s.Type.Slice()) != 1 {
		return nil, unsupported(at, "a type that is not exactly one")
	}
	switch t := s.Type.Slice()[0]; t {
	case openapi3.TypeString:
		n.kind = kindString
		n.minLen = int64(s.MinLength)
		if s.MaxLength != nil {
			n.maxLen = int64(*s.MaxLength)
		}
		if s.Enum != nil {
			n.enum = make(map[string]struct{}, len(s.Enum))
			for _, v := range s.Enum {
				str, ok := v.(string)
				if !ok {
					return nil, unsupported(at, "an enum value that is not a string")
				}
				n.enum[str] = struct{}{}
			}
		}
	case openapi3.TypeBoolean:
		n.kind = kindBoolean
	case openapi3.TypeArray:
		n.kind = kindArray
		n.minItems = int64(s.MinItems)
		if s.MaxItems != nil {
			n.maxItems = int64(*s.MaxItems)
		}
		if s.Items != nil {
			if n.items, err = compile(s.Items, at+"/items", stack); err != nil {
				return nil, err
			}
		}
	case openapi3.TypeObject:
		n.kind = kindObject
		n.props = make(map[string]*node, len(s.Properties))
		for name, p := range s.Properties {
			if n.props[name], err = compile(p, at+"/properties/"+name, stack); err != nil {
				return nil, err
			}
		}
		n.required = slices.Clone(s.Required)
		if s.AdditionalProperties.Schema != nil {
			return nil, unsupported(at, "additionalProperties with a schema")
		}
		if has := s.AdditionalProperties.Has; has != nil && !*has {
			n.closed = true
		}
	default:
		return nil, unsupported(at, "type %q", t)
	}
	switch {
	case n.kind != kindString && (s.Enum != nil || s.MinLength != 0 || s.MaxLength != nil):
		return nil, unsupported(at, "string keywords on a %s", s.Type.Slice()[0])
	case n.kind != kindArray && (s.Items != nil || s.MinItems != 0 || s.MaxItems != nil):
		return nil, unsupported(at, "array keywords on a %s", s.Type.Slice()[0])
	case n.kind != kindObject && (s.Properties != nil || s.Required != nil || s.AdditionalProperties.Has != nil):
		return nil, unsupported(at, "object keywords on a %s", s.Type.Slice()[0])
	}
	return n, nil
}

var schemaType = reflect.TypeFor[openapi3.Schema]()

// unknownKeyword names the first field of s that is set and not in
// keywords ("" if none). Extensions and Origin (where the schema was read)
// validate nothing; any other field with no JSON name (Always: a boolean
// schema) counts as unknown.
func unknownKeyword(s *openapi3.Schema) string {
	v := reflect.ValueOf(s).Elem()
	for i := range schemaType.NumField() {
		f := schemaType.Field(i)
		if v.Field(i).IsZero() || f.Name == "Extensions" || f.Name == "Origin" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || name == "" {
			name = f.Name
		}
		if !keywords[name] {
			return name
		}
	}
	return ""
}

// Check parses body and reports whether the schema accepts it, with the
// value kin-openapi would have decoded (see Parse). ok false means only
// "not proven valid": the body may be invalid, or beyond what Parse reads;
// ask kin-openapi.
func (c *Checker) Check(body []byte) (v any, ok bool) {
	v, ok = Parse(body)
	if !ok || !c.root.accepts(v) {
		return nil, false
	}
	return v, true
}

// CheckValue reports whether the schema accepts v, a value as Parse
// returns them (a path parameter's string, say).
func (c *Checker) CheckValue(v any) bool { return c.root.accepts(v) }

func (n *node) accepts(v any) bool {
	if v == nil {
		return n.nullable
	}
	switch n.kind {
	case kindString:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if n.enum != nil {
			if _, in := n.enum[s]; !in {
				return false
			}
		}
		if n.minLen != 0 || n.maxLen >= 0 {
			// kin-openapi's count: a code point is one, a surrogate two
			// (which a Go string never yields).
			var length int64
			for range s {
				length++
			}
			if length < n.minLen || n.maxLen >= 0 && length > n.maxLen {
				return false
			}
		}
		return true
	case kindBoolean:
		_, ok := v.(bool)
		return ok
	case kindArray:
		a, ok := v.([]any)
		if !ok || int64(len(a)) < n.minItems || n.maxItems >= 0 && int64(len(a)) > n.maxItems {
			return false
		}
		if n.items != nil {
			for _, x := range a {
				if !n.items.accepts(x) {
					return false
				}
			}
		}
		return true
	case kindObject:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, x := range m {
			if p := n.props[k]; p != nil {
				if !p.accepts(x) {
					return false
				}
			} else if n.closed {
				return false
			}
		}
		for _, k := range n.required {
			if _, ok := m[k]; !ok {
				return false
			}
		}
		return true
	}
	return false
}

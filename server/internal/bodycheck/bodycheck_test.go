package bodycheck_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/internal/bodycheck"
)

// decode is encoding/json's reading of a body, as kin-openapi decodes one.
func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil || !errors.Is(err, ioEOF) {
		return nil, fmt.Errorf("more after the value")
	}
	return v, nil
}

var ioEOF = func() error { _, err := json.NewDecoder(strings.NewReader("")).Token(); return err }()

var parseSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0.5e+10`, `true`, `false`, `null`,
	`{"baseId":"bse1","secret":"s","scopes":["table|read","record|read"],"authCode":"c","logo":{"x":[1,2.5,null]}}`,
	` {"a" : [ 1 , "b\u00e9\"\\\/\b\f\n\r\t" ] } `, `{"é":"ü€𝄞"}`, `"\ud834\udd1e"`, `"\ud834"`,
	`{"a":1,"a":2}`, `{"A":1,"a":2}`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `1e`, `-`, `"a` + "\x01" + `"`,
	`{"a":1} x`, `{"a":1}{}`, "\"\xff\"", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`nul`, `tru`, `[`, `{"a"`, `{"a":`, `{1:2}`,
}

// FuzzParse holds Parse to encoding/json: whatever Parse accepts,
// encoding/json decodes to the same value with nothing after it.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := bodycheck.Parse(b)
		if !ok {
			return
		}
		want, err := decode(b)
		if err != nil {
			t.Fatalf("Parse accepted %q, encoding/json refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%q) = %#v, encoding/json %#v", b, got, want)
		}
	})
}

// TestParseReadsWhatEncodingJSONWrites: Parse declines nothing
// encoding/json writes (no repeated names, shallow), and reads it back as
// encoding/json does.
func TestParseReadsWhatEncodingJSONWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		v := randomValue(rng, 0)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // indented, and with HTML escapes off
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent(" ", "\t")
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
			b = buf.Bytes()
		}
		got, ok := bodycheck.Parse(b)
		if !ok {
			t.Fatalf("Parse declined %q", b)
		}
		want, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%q) = %#v, encoding/json %#v", b, got, want)
		}
	}
	for _, s := range []string{`{"a":1,"a":2}`, strings.Repeat("[", 40) + strings.Repeat("]", 40)} {
		if _, ok := bodycheck.Parse([]byte(s)); ok {
			t.Errorf("Parse accepted %s; it must leave it to kin-openapi", s)
		}
	}
}

var runes = []rune("aZ09 |-_é€𝄞\"\\/\b\f\n\r\t\x00\x1f\u2028<>&\ufffd")

func randomValue(rng *rand.Rand, depth int) any {
	n := rng.IntN(8)
	if depth > 3 {
		n = rng.IntN(5)
	}
	switch n {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return rng.NormFloat64() * 1e6
	case 3, 4:
		return randomString(rng)
	case 5:
		return json.Number(fmt.Sprint(rng.Int64() - rng.Int64()))
	case 6:
		a := make([]any, rng.IntN(4))
		for i := range a {
			a[i] = randomValue(rng, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range rng.IntN(5) {
			m[randomString(rng)] = randomValue(rng, depth+1)
		}
		return m
	}
}

func randomString(rng *rand.Rand) string {
	var sb strings.Builder
	for range rng.IntN(6) {
		sb.WriteRune(runes[rng.IntN(len(runes))])
	}
	return sb.String()
}

// kinValidate is the reference: kin-openapi's own request body validation,
// as the request validator runs it, and the value it keeps.
func kinValidate(t *testing.T, body *openapi3.RequestBody, b []byte) (any, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://x/", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	in := &openapi3filter.RequestValidationInput{Request: req, Options: &openapi3filter.Options{KeepValidatedValue: true}}
	if err := openapi3filter.ValidateRequestBody(context.Background(), in, body); err != nil {
		return nil, err
	}
	return req.Body.(interface{ ValidatedValue() any }).ValidatedValue(), nil
}

// bodies are the request bodies Check is held to kin-openapi on: every one
// of the served document's, and one that uses every keyword Check knows.
func bodies(t testing.TB) map[string]*openapi3.RequestBody {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*openapi3.RequestBody{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value.Content.Get("application/json") != nil {
				out[op.OperationID] = op.RequestBody.Value
			}
		}
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(`
openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /x:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [scopes, name]
              properties:
                name: {type: string, minLength: 2, maxLength: 4, x-go-type: string}
                note: {type: string, nullable: true, description: d}
                flag: {type: boolean}
                scopes:
                  type: array
                  minItems: 1
                  maxItems: 3
                  items: {type: string, enum: [a, "b|c", é]}
                inner:
                  type: object
                  properties: {k: {type: array, items: {type: array, items: {type: string}}}}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	out["synthetic"] = doc.Paths.Value("/x").Post.RequestBody.Value
	return out
}

var checkSeeds = []string{
	`{"baseId":"bse1","secret":"s","scopes":["table|read","record|read"],"authCode":"c","logo":"x"}`,
	`{"baseId":"","secret":"s","scopes":["a"],"authCode":"c"}`,
	`{"baseId":"b","secret":"s","scopes":[],"authCode":"c"}`,
	`{"baseId":"b","secret":"s","scopes":[""],"authCode":"c"}`,
	`{"baseId":null,"secret":"s","scopes":["a"],"authCode":"c"}`,
	`{"baseId":"b","secret":"s","scopes":"a","authCode":"c"}`,
	`{"BaseId":"b","secret":"s","scopes":["a"],"authCode":"c"}`,
	`{"token":"pta_x"}`, `{"token":""}`, `{"token":1}`, `{"token":"a","token":"b"}`, `{}`, `[]`, `null`, `"x"`,
	`{"name":"Chart","scopes":["table|read"]}`, `{"name":"","scopes":null}`,
	`{"refreshToken":"r","secret":"s"}`, `{"baseId":"b","subject":"u"}`, `{"token":"t","pluginId":"p","secret":"s"}`,
	`{"name":"ab","scopes":["a","b|c"]}`, `{"name":"abcde","scopes":["a"]}`, `{"name":"éé","scopes":["é"],"note":null}`,
	`{"name":"ab","scopes":["a"],"extra":1}`, `{"name":"ab","scopes":["a","a","a","a"]}`, `{"name":"ab","scopes":["d"]}`,
	`{"name":"ab","scopes":["a"],"flag":"true"}`, `{"name":"ab","scopes":["a"],"inner":{"k":[["x"],[]]}}`,
	`{"name":"ab","scopes":["a"],"inner":{"k":[["x"],[1]]}}`, `{"name":"𝄞𝄞","scopes":["a"]}`,
}

// FuzzCheck holds Check to kin-openapi on every body schema: what Check
// accepts, kin-openapi accepts with the same value; what kin-openapi
// accepts and Parse reads, Check accepts.
func FuzzCheck(f *testing.F) {
	for _, s := range checkSeeds {
		f.Add([]byte(s))
	}
	bs := bodies(f)
	checkers := map[string]*bodycheck.Checker{}
	for name, b := range bs {
		c, err := bodycheck.Compile(b.Content.Get("application/json").Schema)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		checkers[name] = c
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, body := range bs {
			checkAsKin(t, name, body, checkers[name], b)
		}
	})
}

// checkAsKin holds Check to kin-openapi on body b: what Check accepts,
// kin-openapi accepts with the same value; what kin-openapi accepts and
// Parse reads, Check accepts.
func checkAsKin(t *testing.T, name string, body *openapi3.RequestBody, c *bodycheck.Checker, b []byte) {
	t.Helper()
	got, ok := c.Check(b)
	want, err := kinValidate(t, body, b)
	switch {
	case ok && err != nil:
		t.Fatalf("%s: Check accepted %q, kin-openapi refuses it: %v", name, b, err)
	case ok && !reflect.DeepEqual(got, want):
		t.Fatalf("%s: Check(%q) = %#v, kin-openapi kept %#v", name, b, got, want)
	case !ok && err == nil:
		if _, parsed := bodycheck.Parse(b); parsed {
			t.Fatalf("%s: kin-openapi accepts %q, Check refused it", name, b)
		}
	}
}

// TestCheckAnswersAsKinOpenAPI is FuzzCheck's property on bodies made from
// each schema: mostly valid ones, each with a few near misses (a required
// property dropped, a string one rune too long or short, a value of another
// type, null, an unknown property, an enum member misspelt, an array one
// item too long), so that the cases a byte fuzzer rarely builds (a whole
// valid body, then one rule broken) are covered on every run.
func TestCheckAnswersAsKinOpenAPI(t *testing.T) {
	rng := rand.New(rand.NewPCG(28, 2))
	n := 400
	if testing.Short() {
		n = 50
	}
	for name, body := range bodies(t) {
		schema := body.Content.Get("application/json").Schema
		c, err := bodycheck.Compile(schema)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		accepted := 0
		for range n {
			b, err := json.Marshal(randomInstance(rng, schema.Value, 0))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Check(b); ok {
				accepted++
			}
			checkAsKin(t, name, body, c, b)
		}
		// A generator that never builds a valid body proves half the
		// property only.
		if accepted == 0 {
			t.Errorf("%s: none of %d generated bodies was valid", name, n)
		}
	}
}

// randomInstance returns a value of schema, or (now and then, at any depth)
// a near miss.
func randomInstance(rng *rand.Rand, s *openapi3.Schema, depth int) any {
	if s == nil || depth > 6 {
		return randomValue(rng, 4)
	}
	switch rng.IntN(40) {
	case 0:
		return nil
	case 1:
		return randomValue(rng, depth)
	}
	switch {
	case s.Type.Is(openapi3.TypeObject):
		m := map[string]any{}
		for _, k := range sortedKeys(s.Properties) {
			required := slices.Contains(s.Required, k)
			if (required && rng.IntN(30) > 0) || (!required && rng.IntN(2) == 0) {
				m[k] = randomInstance(rng, s.Properties[k].Value, depth+1)
			}
		}
		if rng.IntN(15) == 0 {
			m[randomString(rng)] = randomValue(rng, depth+1)
		}
		return m
	case s.Type.Is(openapi3.TypeArray):
		lo, hi := int(s.MinItems), 4
		if s.MaxItems != nil {
			hi = int(*s.MaxItems)
		}
		n := lo + rng.IntN(max(1, hi-lo+1))
		if rng.IntN(15) == 0 {
			n = max(0, []int{lo - 1, hi + 1}[rng.IntN(2)])
		}
		a := make([]any, n)
		var items *openapi3.Schema
		if s.Items != nil {
			items = s.Items.Value
		}
		for i := range a {
			a[i] = randomInstance(rng, items, depth+1)
		}
		return a
	case s.Type.Is(openapi3.TypeString):
		if len(s.Enum) > 0 && rng.IntN(10) > 0 {
			v := s.Enum[rng.IntN(len(s.Enum))]
			if str, ok := v.(string); ok && rng.IntN(10) == 0 {
				return strings.ToUpper(str) + "x"[:rng.IntN(2)]
			}
			return v
		}
		lo, hi := int(s.MinLength), 12
		if s.MaxLength != nil {
			hi = int(*s.MaxLength)
		}
		if rng.IntN(10) == 0 {
			lo, hi = max(0, lo-1), hi+1
		}
		var sb strings.Builder
		for range lo + rng.IntN(max(1, hi-lo+1)) {
			sb.WriteRune(runes[rng.IntN(len(runes))])
		}
		return sb.String()
	case s.Type.Is(openapi3.TypeBoolean):
		return rng.IntN(2) == 0
	}
	return randomValue(rng, depth)
}

func sortedKeys(m openapi3.Schemas) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestCompileDeclines(t *testing.T) {
	for _, src := range []string{
		`{type: string, pattern: "^a$"}`, `{type: string, format: date-time}`, `{type: string, default: x}`,
		`{type: object, properties: {a: {type: string, readOnly: true}}}`, `{type: integer}`, `{type: number}`,
		`{allOf: [{type: string}]}`, `{}`, `{type: object, additionalProperties: {type: string}}`,
		`{type: string, minItems: 1}`, `{type: array, items: {type: string, maxLength: 2, oneOf: [{type: string}]}}`,
		`{type: object, minProperties: 1}`, `{type: array, uniqueItems: true}`, `{type: string, enum: [1]}`,
	} {
		var s openapi3.Schema
		if err := yamlUnmarshal(src, &s); err != nil {
			t.Fatal(src, err)
		}
		if _, err := bodycheck.Compile(&openapi3.SchemaRef{Value: &s}); !errors.Is(err, bodycheck.ErrUnsupported) {
			t.Errorf("Compile(%s) = %v, want ErrUnsupported", src, err)
		}
	}
	// A schema that contains itself.
	self := &openapi3.Schema{Type: &openapi3.Types{"object"}, Properties: openapi3.Schemas{}}
	self.Properties["again"] = &openapi3.SchemaRef{Value: self}
	if _, err := bodycheck.Compile(&openapi3.SchemaRef{Value: self}); !errors.Is(err, bodycheck.ErrUnsupported) {
		t.Errorf("Compile(recursive) = %v, want ErrUnsupported", err)
	}
}

func yamlUnmarshal(src string, s *openapi3.Schema) error {
	doc, err := openapi3.NewLoader().LoadFromData([]byte("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    S: " + src + "\n"))
	if err != nil {
		return err
	}
	*s = *doc.Components.Schemas["S"].Value
	return nil
}

func BenchmarkBody(b *testing.B) {
	body := []byte(`{"baseId":"bseBench","secret":"pts_0123456789abcdef0123456789abcdef","scopes":["table|read","record|read"],"authCode":"pac_0123456789abcdef0123456789abcdef"}`)
	rb := bodies(b)["postPluginToken"]
	c, err := bodycheck.Compile(rb.Content.Get("application/json").Schema)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := c.Check(body); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("kin-openapi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, "http://x/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			in := &openapi3filter.RequestValidationInput{Request: req, Options: &openapi3filter.Options{KeepValidatedValue: true}}
			if err := openapi3filter.ValidateRequestBody(context.Background(), in, rb); err != nil {
				b.Fatal(err)
			}
		}
	})
}

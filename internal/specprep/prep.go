package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/speakeasy-api/openapi/overlay"
	"gopkg.in/yaml.v3"
)

// Options say how to prepare an upstream document.
type Options struct {
	// Selection is the upstream paths plugintoken serves (the overlay's
	// x-plugintoken-select):
	// every operation on them is kept, everything else in the upstream
	// document is dropped.
	Selection []string
	// TokenPath is the path of Teable's token operation, served as GET and
	// POST whichever of the two upstream documents.
	TokenPath string
	// Overlay holds every local change; OverlayName names it in messages.
	Overlay     *overlay.Overlay
	OverlayName string
}

// The names the token operation's body and answer get, shared by its GET
// and POST and by the refresh answer.
const (
	tokenRequestSchema  = "PluginTokenRequest"
	tokenResponseSchema = "PluginTokenResponse"
)

// Load reads an upstream document: YAML or JSON (JSON is YAML), gzipped or
// not.
func Load(raw []byte) (*yaml.Node, error) {
	raw, err := decompress(raw)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not an OpenAPI document: the top level is not a mapping")
	}
	if v := get(doc.Content[0], "openapi"); v == nil || !strings.HasPrefix(v.Value, "3.") {
		return nil, errors.New("not an OpenAPI 3 document: no `openapi: 3.x`")
	}
	return &doc, nil
}

// decompress returns raw, gunzipped when it is gzipped.
func decompress(raw []byte) ([]byte, error) {
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

// Prepare turns an upstream document into the document plugintoken serves:
// the selection, the token operation under both methods with its body and
// answer named, the components the selection uses, then the overlay, action
// by action, refusing any action that would merge into what upstream
// defines. It then refuses the defects that would otherwise surface only at
// request time.
func Prepare(doc *yaml.Node, opt Options) (*yaml.Node, error) {
	root := doc.Content[0]
	if err := selectPaths(root, opt.Selection); err != nil {
		return nil, err
	}
	if err := tokenOperation(root, opt.TokenPath); err != nil {
		return nil, err
	}
	pruneComponents(root)
	upstream := namesOf(root)
	if err := applyOverlay(doc, opt.Overlay, opt.OverlayName, upstream); err != nil {
		return nil, err
	}
	if err := checkDefects(doc.Content[0]); err != nil {
		return nil, err
	}
	blockStyle(doc)
	return doc, nil
}

// selectPaths keeps the selected paths and drops every other.
func selectPaths(root *yaml.Node, selection []string) error {
	paths := get(root, "paths")
	if paths == nil || paths.Kind != yaml.MappingNode {
		return errors.New("the upstream document has no paths")
	}
	var missing []string
	for _, p := range selection {
		if get(paths, p) == nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the upstream document has no %s: selected by the overlay's x-plugintoken-select, so plugintoken serves it; "+
			"upstream removed or renamed it, which changes what plugintoken serves (update the selection, the overlay's actions "+
			"and the handlers, or keep the current upstream document)", strings.Join(missing, ", "))
	}
	kept := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, p := range keys(paths) {
		if slices.Contains(selection, p) {
			set(kept, p, get(paths, p))
		}
	}
	set(root, "paths", kept)
	return nil
}

// tokenOperation serves the token operation as both GET and POST: the
// method upstream does not document is derived from the one it does (Teable
// documents GET with a body, which browsers cannot send; its server and
// clients use POST). The body and answer schemas become components shared
// by both, so the two cannot drift, and the overlay and the refresh answer
// refer to them by name.
func tokenOperation(root *yaml.Node, tokenPath string) error {
	item := at(root, "paths", tokenPath)
	var documented []string
	for _, m := range []string{"get", "post"} {
		if get(item, m) != nil {
			documented = append(documented, m)
		}
	}
	if len(documented) == 0 {
		return fmt.Errorf("the upstream document has no GET or POST at %s: the token operation is gone", tokenPath)
	}
	for _, part := range []struct {
		name, what string
		path       []string
	}{
		{tokenRequestSchema, "request body", []string{"requestBody", "content", "application/json", "schema"}},
		{tokenResponseSchema, "200 answer", []string{"responses", "200", "content", "application/json", "schema"}},
	} {
		var schema *yaml.Node
		for _, m := range documented {
			parent := at(get(item, m), part.path[:len(part.path)-1]...)
			s, err := resolveSchema(root, get(parent, "schema"))
			if err != nil || s == nil {
				return fmt.Errorf("%s %s: no JSON schema for its %s (%v)", strings.ToUpper(m), tokenPath, part.what, err)
			}
			if schema != nil && !equal(schema, s) {
				return fmt.Errorf("upstream's GET and POST %s differ in their %s: plugintoken serves one token operation "+
					"under both methods, so the two must agree (or the handlers must learn the difference)", tokenPath, part.what)
			}
			schema = s
			set(parent, "schema", ref("#/components/schemas/"+part.name))
		}
		schemas := ensure(ensure(root, "components"), "schemas")
		if get(schemas, part.name) != nil {
			return fmt.Errorf("upstream defines components/schemas/%s, the name plugintoken gives the token operation's %s: "+
				"rename ours in internal/specprep and the overlay", part.name, part.what)
		}
		set(schemas, part.name, schema)
	}
	if len(documented) == 1 {
		from := documented[0]
		to := map[string]string{"get": "post", "post": "get"}[from]
		twin := clone(get(item, from))
		del(twin, "x-codeSamples") // they show the other method
		set(twin, "x-plugintoken-derived-from", scalar(from))
		set(item, to, twin)
	}
	return nil
}

// resolveSchema returns a copy of a schema, following one local $ref.
func resolveSchema(root, s *yaml.Node) (*yaml.Node, error) {
	if s == nil {
		return nil, errors.New("missing")
	}
	if r := get(s, "$ref"); r != nil {
		name, ok := strings.CutPrefix(r.Value, "#/components/schemas/")
		if !ok {
			return nil, fmt.Errorf("$ref %q is not a local schema", r.Value)
		}
		target := at(root, "components", "schemas", name)
		if target == nil {
			return nil, fmt.Errorf("$ref %q names no schema", r.Value)
		}
		return clone(target), nil
	}
	return clone(s), nil
}

// componentSections are the sections of components that pruning and the
// merge check look at. Security schemes are kept whole: the overlay's
// operations use upstream's bearerAuth.
var componentSections = []string{"schemas", "parameters", "responses", "requestBodies", "headers", "examples", "links", "callbacks"}

// pruneComponents drops the components nothing selected refers to.
func pruneComponents(root *yaml.Node) {
	comps := get(root, "components")
	if comps == nil {
		return
	}
	used := map[string]bool{}
	var queue []*yaml.Node
	note := func(n *yaml.Node) {
		walk(n, "", func(n *yaml.Node, _ string) {
			r := get(n, "$ref")
			if r == nil || !strings.HasPrefix(r.Value, "#/components/") || used[r.Value] {
				return
			}
			used[r.Value] = true
			parts := strings.SplitN(strings.TrimPrefix(r.Value, "#/components/"), "/", 2)
			if len(parts) == 2 {
				if target := at(comps, parts[0], unescapePointer(parts[1])); target != nil {
					queue = append(queue, target)
				}
			}
		})
	}
	note(get(root, "paths"))
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		note(n)
	}
	for _, section := range componentSections {
		s := get(comps, section)
		if s == nil {
			continue
		}
		for _, name := range keys(s) {
			if !used["#/components/"+section+"/"+escapePointer(name)] {
				del(s, name)
			}
		}
		if len(s.Content) == 0 {
			del(comps, section)
		}
	}
}

func unescapePointer(s string) string {
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
}

// names is what the selected upstream defines: operations by path and
// method, and components by section and name.
type names struct {
	ops        map[string]map[string]string // path -> method -> how to name it
	components map[string]map[string]bool
}

func namesOf(root *yaml.Node) names {
	n := names{ops: map[string]map[string]string{}, components: map[string]map[string]bool{}}
	paths := get(root, "paths")
	for _, p := range keys(paths) {
		n.ops[p] = map[string]string{}
		for _, m := range keys(get(paths, p)) {
			if isMethod(m) {
				n.ops[p][m] = describeOp(m, p, get(get(paths, p), m))
			}
		}
	}
	comps := get(root, "components")
	for _, section := range componentSections {
		n.components[section] = map[string]bool{}
		for _, name := range keys(get(comps, section)) {
			n.components[section][name] = true
		}
	}
	return n
}

func describeOp(method, path string, op *yaml.Node) string {
	s := strings.ToUpper(method) + " " + path
	if id := get(op, "operationId"); id != nil {
		s += " (operationId " + id.Value + ")"
	}
	return s
}

// applyOverlay applies the overlay's actions one by one, in strict mode (an
// action whose target matches nothing is an error), after checking that
// the action adds no path, operation or component that the selected
// upstream already defines: such an action would merge silently into
// upstream's definition.
func applyOverlay(doc *yaml.Node, o *overlay.Overlay, name string, upstream names) error {
	for i, action := range o.Actions {
		label := fmt.Sprintf("%s action %d (target %s)", name, i+1, action.Target)
		if action.Description != "" {
			label += ` "` + firstLine(action.Description) + `"`
		}
		if !action.Remove && !action.Update.IsZero() {
			if err := checkAdditions(doc, o, action, upstream); err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
		}
		one := *o
		one.Actions = []overlay.Action{action}
		if _, err := one.ApplyToStrict(doc); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, ".\n"); i > 0 {
		s = s[:i]
	}
	return s
}

// checkAdditions refuses an update that would add to the document what the
// selected upstream already defines.
func checkAdditions(doc *yaml.Node, o *overlay.Overlay, action overlay.Action, upstream names) error {
	q, err := o.NewPath(action.Target, nil)
	if err != nil {
		return err
	}
	root := doc.Content[0]
	paths, comps := get(root, "paths"), get(root, "components")
	update := &action.Update
	if update.Kind == yaml.DocumentNode && len(update.Content) == 1 {
		update = update.Content[0]
	}
	var problems []string
	checkPaths := func(upd *yaml.Node) {
		for _, p := range keys(upd) {
			if ops, ok := upstream.ops[p]; ok {
				problems = append(problems, fmt.Sprintf("it adds path %s, which upstream defines (%s); "+
					"target upstream's operations by path and method to change them, or drop %s from x-plugintoken-select to serve your own",
					p, strings.Join(sortedValues(ops), ", "), p))
			}
		}
	}
	checkPathItem := func(p string, upd *yaml.Node) {
		for _, m := range keys(upd) {
			if desc, ok := upstream.ops[p][m]; ok && isMethod(m) {
				problems = append(problems, fmt.Sprintf("it adds %s %s, which upstream defines: %s", strings.ToUpper(m), p, desc))
			}
			if m == "parameters" && len(upstream.ops[p]) > 0 {
				problems = append(problems, fmt.Sprintf("it adds path parameters to %s, whose upstream operations declare their own", p))
			}
		}
	}
	checkSection := func(section string, upd *yaml.Node) {
		for _, n := range keys(upd) {
			if upstream.components[section][n] {
				problems = append(problems, fmt.Sprintf("it adds components/%s/%s, which upstream defines", section, n))
			}
		}
	}
	for _, t := range q.Query(doc) {
		switch t {
		case doc, root:
			checkPaths(get(update, "paths"))
			for _, s := range componentSections {
				checkSection(s, at(update, "components", s))
			}
		case paths:
			checkPaths(update)
		case comps:
			for _, s := range componentSections {
				checkSection(s, get(update, s))
			}
		default:
			for _, p := range keys(paths) {
				if get(paths, p) == t {
					checkPathItem(p, update)
				}
			}
			for _, s := range componentSections {
				if get(comps, s) == t && t != nil {
					checkSection(s, update)
				}
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

var templateParam = regexp.MustCompile(`\{([^}]+)\}`)

// checkDefects refuses, in the document to serve, what would otherwise
// fail only at request time or in the generated code: path parameters that
// disagree with their templates, patterns Go's regexp cannot compile, and
// operations whose generated names collide.
func checkDefects(root *yaml.Node) error {
	var problems []string
	paths := get(root, "paths")
	generated := map[string]string{} // normalised Go name -> operation
	for _, p := range keys(paths) {
		item := get(paths, p)
		inTemplate := map[string]bool{}
		for _, m := range templateParam.FindAllStringSubmatch(p, -1) {
			inTemplate[m[1]] = true
		}
		pathLevel := pathParams(root, get(item, "parameters"))
		for _, m := range keys(item) {
			if !isMethod(m) {
				continue
			}
			op := get(item, m)
			what := describeOp(m, p, op)
			declared := map[string]bool{}
			for n := range pathLevel {
				declared[n] = true
			}
			for n, count := range pathParams(root, get(op, "parameters")) {
				if count > 1 {
					problems = append(problems, fmt.Sprintf("%s declares path parameter %q %d times", what, n, count))
				}
				declared[n] = true
			}
			for n := range inTemplate {
				if !declared[n] {
					problems = append(problems, fmt.Sprintf("%s: {%s} in the path has no path parameter", what, n))
				}
			}
			for n := range declared {
				if !inTemplate[n] {
					problems = append(problems, fmt.Sprintf("%s: path parameter %q is not in the path template", what, n))
				}
			}
			name := strings.ToLower(m) + "-" + strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")
			if id := get(op, "operationId"); id != nil {
				name = id.Value
			}
			key := normaliseName(name)
			if other, ok := generated[key]; ok {
				problems = append(problems, fmt.Sprintf("%s and %s generate the same Go name (%s): give one an operationId in the overlay", other, what, name))
			}
			generated[key] = what
		}
	}
	walk(root, "", func(n *yaml.Node, pointer string) {
		pat := get(n, "pattern")
		if pat == nil || pat.Kind != yaml.ScalarNode || !strings.Contains(pointer, "/schema") && !strings.HasPrefix(pointer, "/components/schemas") {
			return
		}
		if _, err := regexp.Compile(pat.Value); err != nil {
			problems = append(problems, fmt.Sprintf("the pattern at %s is not a regular expression Go accepts (%v): requests would be answered 400 "+
				"whatever they send; replace it in the overlay", pointer, err))
		}
	})
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("the document to serve has defects:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// pathParams counts the path parameters of a parameter list by name,
// following local $refs.
func pathParams(root, list *yaml.Node) map[string]int {
	out := map[string]int{}
	if list == nil {
		return out
	}
	for _, p := range list.Content {
		if r := get(p, "$ref"); r != nil {
			if name, ok := strings.CutPrefix(r.Value, "#/components/parameters/"); ok {
				p = at(root, "components", "parameters", unescapePointer(name))
			}
		}
		if in := get(p, "in"); in != nil && in.Value == "path" {
			if n := get(p, "name"); n != nil {
				out[n.Value]++
			}
		}
	}
	return out
}

// normaliseName is a Go name as the generator's normaliser would spell it,
// reduced to what makes two names collide.
func normaliseName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// blockStyle writes the document in one style whatever its sources (JSON
// input is all flow and double quotes): block YAML, scalars quoted only
// where YAML needs it.
func blockStyle(doc *yaml.Node) {
	walk(doc, "", func(n *yaml.Node, _ string) {
		if n.Kind != yaml.DocumentNode {
			n.Style = 0
		}
	})
}

// Marshal writes the document as YAML.
func Marshal(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

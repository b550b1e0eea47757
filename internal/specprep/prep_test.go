package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/speakeasy-api/openapi/overlay"
	"github.com/speakeasy-api/openapi/overlay/loader"
	"gopkg.in/yaml.v3"
)

const repo = "../.."

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T, raw []byte) *yaml.Node {
	t.Helper()
	doc, err := Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func repoOverlay(t *testing.T) *overlay.Overlay {
	t.Helper()
	o, err := loader.LoadOverlay(filepath.Join(repo, "openapi", "overlay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// prepare runs Prepare with the repository's overlay and the given
// selection (the repository's when nil).
func prepare(t *testing.T, raw []byte, selection []string) (*yaml.Node, error) {
	t.Helper()
	if selection == nil {
		var err error
		if selection, err = Selection(repoOverlay(t)); err != nil {
			t.Fatal(err)
		}
	}
	return Prepare(load(t, raw), Options{Selection: selection, TokenPath: tokenPath, Overlay: repoOverlay(t), OverlayName: "overlay"})
}

func mustPrepare(t *testing.T, raw []byte, selection []string) *yaml.Node {
	t.Helper()
	doc, err := prepare(t, raw, selection)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func wantError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// upstream is Teable's published single-operation document: the fixed
// revision these tests derive theirs from, whatever openapi/ holds now.
func upstream(t *testing.T) []byte {
	return readFile(t, "testdata/teable-get-plugin-token.yaml")
}

// checkTwins: the token path has GET and POST whose bodies and answers are
// the shared components, the derived one marked and without code samples.
func checkTwins(t *testing.T, doc *yaml.Node, derived string) {
	t.Helper()
	item := at(doc.Content[0], "paths", tokenPath)
	for _, m := range []string{"get", "post"} {
		op := get(item, m)
		if op == nil {
			t.Fatalf("no %s at the token path", m)
		}
		if r := at(op, "requestBody", "content", "application/json", "schema", "$ref"); r == nil || r.Value != "#/components/schemas/PluginTokenRequest" {
			t.Errorf("%s body is not the shared PluginTokenRequest", m)
		}
		if r := at(op, "responses", "200", "content", "application/json", "schema", "$ref"); r == nil || r.Value != "#/components/schemas/PluginTokenResponse" {
			t.Errorf("%s answer is not the shared PluginTokenResponse", m)
		}
		if get(op, "security") != nil {
			t.Errorf("%s keeps upstream's security: the overlay's removal did not apply", m)
		}
		marked := get(op, "x-plugintoken-derived-from") != nil
		if marked != (m == derived) {
			t.Errorf("%s derived mark = %v, want %v", m, marked, m == derived)
		}
		if m == derived && get(op, "x-codeSamples") != nil {
			t.Errorf("the derived %s keeps the other method's code samples", m)
		}
	}
	if at(doc.Content[0], "components", "schemas", "PluginTokenRequest", "properties", "secret", "minLength") == nil {
		t.Error("the overlay's refinements of the token body did not apply")
	}
	refresh := at(doc.Content[0], "paths", "/plugin/{pluginId}/refreshToken", "post", "responses", "200", "content", "application/json", "schema", "$ref")
	if refresh == nil || refresh.Value != "#/components/schemas/PluginTokenResponse" {
		t.Error("the refresh answer is not the token answer")
	}
}

func TestPreparePublishedUpstream(t *testing.T) {
	checkTwins(t, mustPrepare(t, upstream(t), nil), "post")
}

// TestPreparePostDocumented: a revision that documents the token operation
// as POST (as Teable's controller serves it) gets the GET derived.
func TestPreparePostDocumented(t *testing.T) {
	post := strings.Replace(string(upstream(t)), "\n    get:\n", "\n    post:\n", 1)
	checkTwins(t, mustPrepare(t, []byte(post), nil), "get")
}

// TestPrepareBothDocumented: both methods documented alike need no
// derivation; documented differently, they are refused.
func TestPrepareBothDocumented(t *testing.T) {
	up := string(upstream(t))
	i, j := strings.Index(up, "\n    get:\n"), strings.Index(up, "\ncomponents:")
	both := up[:j] + strings.Replace(up[i:j], "\n    get:\n", "\n    post:\n", 1) + up[j:]
	checkTwins(t, mustPrepare(t, []byte(both), nil), "")

	differ := up[:j] + strings.Replace(strings.Replace(up[i:j], "\n    get:\n", "\n    post:\n", 1), "authCode:\n                  type: string", "authCode:\n                  type: integer", 1) + up[j:]
	_, err := prepare(t, []byte(differ), nil)
	wantError(t, err, "GET and POST", "differ", "request body")
}

func TestPrepareEnumScopes(t *testing.T) {
	doc := mustPrepare(t, readFile(t, "testdata/teable-get-plugin-token@7d9b99e-get-enum-scopes.yaml"), nil)
	checkTwins(t, doc, "post")
	items := at(doc.Content[0], "components", "schemas", "PluginTokenRequest", "properties", "scopes", "items")
	if enum := get(items, "enum"); enum == nil || len(enum.Content) != 37 {
		t.Error("upstream's scope enum is not served")
	}
	if v := get(items, "x-go-type"); v == nil || v.Value != "string" {
		t.Error("enum scopes are not strings in Go")
	}
}

// TestPrepareFullDocument: Teable's whole 1.10.0 document is cut to the
// selection; its defects and its own plugin routes outside the selection do
// not matter, inside it they are refused by name.
func TestPrepareFullDocument(t *testing.T) {
	full := readFile(t, "testdata/teable-openapi-1.10.0.json.gz")
	doc := mustPrepare(t, full, nil)
	checkTwins(t, doc, "post")
	paths := keys(get(doc.Content[0], "paths"))
	for _, p := range paths {
		if p != tokenPath && get(at(doc.Content[0], "paths"), p) != nil && strings.HasPrefix(p, "/base") {
			t.Errorf("unselected upstream path %s is served", p)
		}
	}
	if len(paths) != 9 { // the token path and the overlay's eight
		t.Errorf("served paths: %v", paths)
	}
	if n := len(keys(at(doc.Content[0], "components", "schemas"))); n > 20 {
		t.Errorf("%d schemas served: upstream's unused components were not pruned", n)
	}

	t.Run("UpstreamPluginRoutesSelected", func(t *testing.T) {
		_, err := prepare(t, full, []string{tokenPath, "/plugin", "/plugin/{pluginId}/refreshToken"})
		wantError(t, err, "adds path /plugin,", "which upstream defines (GET /plugin, POST /plugin)", "x-plugintoken-select")
	})
	t.Run("JavaScriptPatternSelected", func(t *testing.T) {
		_, err := prepare(t, full, []string{tokenPath, "/auth/signup"})
		wantError(t, err, "/paths/~1auth~1signup/post/requestBody", "not a regular expression Go accepts")
	})
	t.Run("PathParameterMismatchSelected", func(t *testing.T) {
		_, err := prepare(t, full, []string{tokenPath, "/base/duplicate", "/space/{spaceId}/collaborators"})
		wantError(t, err, `POST /base/duplicate`, `path parameter "baseId" is not in the path template`,
			`PATCH /space/{spaceId}/collaborators`, `path parameter "invitationId" is not in the path template`)
	})
}

func TestPrepareRemovedTokenOperation(t *testing.T) {
	up := string(upstream(t))
	removed := up[:strings.Index(up, "paths:")] + "paths: {}\n" + up[strings.Index(up, "components:"):]
	_, err := prepare(t, []byte(removed), nil)
	wantError(t, err, "no /plugin/{pluginId}/token", "removed or renamed")

	onlyPut := strings.Replace(up, "\n    get:\n", "\n    put:\n", 1)
	_, err = prepare(t, []byte(onlyPut), nil)
	wantError(t, err, "no GET or POST at /plugin/{pluginId}/token")
}

// TestNoSilentMerges: an overlay action that adds what upstream defines
// fails, naming the action and upstream's definition.
func TestNoSilentMerges(t *testing.T) {
	up := string(upstream(t))
	withError := strings.Replace(up, "components:\n", "components:\n  schemas:\n    Error:\n      type: string\n", 1)
	withError = strings.Replace(withError, "      security:\n        - bearerAuth: []\n", "      security:\n        - bearerAuth: []\n      x-error:\n        $ref: '#/components/schemas/Error'\n", 1)
	_, err := prepare(t, []byte(withError), nil)
	wantError(t, err, "overlay action", "adds components/schemas/Error, which upstream defines")

	// Upstream's new DELETE on a path the overlay adds to: the overlay's
	// operations would merge into upstream's path item.
	i := strings.Index(up, "\ncomponents:")
	withRefresh := up[:i] + `
  /plugin/{pluginId}/refreshToken:
    post:
      operationId: upstreamRefresh
      parameters:
        - name: pluginId
          in: path
          required: true
          schema:
            type: string
      responses:
        '200':
          description: ok
` + up[i:]
	_, err = prepare(t, []byte(withRefresh), []string{tokenPath, "/plugin/{pluginId}/refreshToken"})
	wantError(t, err, "adds path /plugin/{pluginId}/refreshToken", "POST /plugin/{pluginId}/refreshToken (operationId upstreamRefresh)")
}

// TestGeneratedNameCollision: two operations whose generated Go names
// collide are refused by name.
func TestGeneratedNameCollision(t *testing.T) {
	up := string(upstream(t))
	i := strings.Index(up, "\ncomponents:")
	clash := up[:i] + `
  /plugin/{pluginId}/token/status:
    get:
      operationId: GetPluginToken
      parameters:
        - name: pluginId
          in: path
          required: true
          schema:
            type: string
      responses:
        '200':
          description: ok
` + up[i:]
	_, err := prepare(t, []byte(clash), []string{tokenPath, "/plugin/{pluginId}/token/status"})
	wantError(t, err, "generate the same Go name", "operationId getPluginToken", "operationId GetPluginToken")
}

// TestLoadFormats: YAML, JSON and gzipped JSON load alike.
func TestLoadFormats(t *testing.T) {
	if _, err := Load(readFile(t, "testdata/teable-openapi-1.10.0.json.gz")); err != nil {
		t.Errorf("gzipped JSON: %v", err)
	}
	if _, err := Load([]byte(`{"openapi": "3.0.0", "paths": {}}`)); err != nil {
		t.Errorf("JSON: %v", err)
	}
	for _, bad := range []string{"- a list", "swagger: '2.0'\npaths: {}"} {
		if _, err := Load([]byte(bad)); err == nil {
			t.Errorf("%q loaded", bad)
		}
	}
}

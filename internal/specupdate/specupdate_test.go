// Package specupdate holds the tests of the update path: `make update-spec`
// run on copies of the module with real and derived upstream revisions, each
// ending in a green build and test run without hand edits, or refused with
// the tree exactly as before.
package specupdate

import (
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

var root, _ = filepath.Abs(filepath.Join("..", ".."))

// testdata holds Teable's real documents (see its README).
var testdata = filepath.Join(root, "internal", "specprep", "testdata")

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
}

// module is a copy of the repository (its tracked and untracked files, as
// git sees them) with a git history of one commit, so that `git status`
// tells whether a step changed anything.
type module struct {
	t       *testing.T
	dir     string
	browser bool // render the docs page in Chromium in the API's tests
	filled  bool // the repository was copied into dir
}

// copies hands out copies of the module to parallel subtests: a copy is
// reset (git reset and clean) before it is handed out again, and reusing
// its directory lets the build cache serve what a scenario did not change.
type copies struct {
	parent *testing.T
	pool   chan *module
}

// newCopies makes n copies, each in a directory of its own that is the
// same from one run of the tests to the next (see copyDir), and fills them
// when a subtest first asks.
func newCopies(t *testing.T, n int) *copies {
	c := &copies{parent: t, pool: make(chan *module, n)}
	for i := range n {
		c.pool <- &module{dir: copyDir(t, i)}
	}
	return c
}

// copyDir returns the directory of copy i: the same path at every run from
// this checkout, because the build cache keys a package compiled without
// -trimpath by its directory, so that a run reuses what the run before it
// compiled (about 15 s of each copy's first update); a temporary one when
// another run from this checkout holds that path. It is removed when t
// ends.
func copyDir(t *testing.T, i int) string {
	t.Helper()
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("plugintoken-specupdate-%x-%d", sum[:4], i))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return t.TempDir()
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return t.TempDir()
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		_ = lock.Close() // and with it the lock
	})
	return dir
}

// get returns a clean copy for the subtest t, and gives it back when t ends.
func (c *copies) get(t *testing.T) *module {
	t.Helper()
	m := <-c.pool
	t.Cleanup(func() { c.pool <- m })
	m.t, m.browser = t, false // before git: it reports to the subtest
	if m.filled {
		m.git("reset", "-q", "--hard")
		m.git("clean", "-q", "-fdx")
	} else {
		copyModule(m)
		m.filled = true
	}
	return m
}

// copyModule copies the repository into m.dir.
func copyModule(m *module) {
	t := m.t
	t.Helper()
	list := exec.Command("git", "ls-files", "-co", "--exclude-standard", "-z")
	list.Dir = root
	files, err := list.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(m.dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.git("init", "-q")
	m.git("add", "-A")
	m.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
}

func (m *module) git(args ...string) string {
	m.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = m.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.t.Fatalf("git %v: %v %s", args, err, out)
	}
	return string(out)
}

// update runs `make update-spec NEW=doc` with the API's tests as its test
// step (the whole suite is what `make test` runs on the clean clone). The
// docs page is rendered in Chromium only where m.browser is set: it takes
// seconds, and one revision (the full document) is enough to show that a
// new document renders.
func (m *module) update(doc string, args ...string) (string, error) {
	cmd := exec.Command("make", append([]string{"-s", "update-spec", "NEW=" + doc, "UPDATE_TEST=test-server"}, args...)...)
	cmd.Dir = m.dir
	cmd.Env = cleanEnv()
	if !m.browser {
		cmd.Env = append(cmd.Env, "PLUGINTOKEN_NO_BROWSER=1")
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustUpdate runs update and wants success.
func (m *module) mustUpdate(doc string, args ...string) string {
	m.t.Helper()
	out, err := m.update(doc, args...)
	if err != nil || !strings.Contains(out, "updated: review") {
		m.t.Fatalf("update-spec %s: %v\n%s", filepath.Base(doc), err, tail(out))
	}
	return out
}

// refused runs update and wants a refusal or failure that leaves the tree
// exactly as it was.
func (m *module) refused(doc, want string, args ...string) string {
	m.t.Helper()
	out, err := m.update(doc, args...)
	if err == nil || !strings.Contains(out, want) {
		m.t.Errorf("update-spec %s: err = %v, want %q\n%s", filepath.Base(doc), err, want, tail(out))
	}
	if st := m.git("status", "--porcelain", "--untracked-files=all"); st != "" {
		m.t.Errorf("the tree changed after a refused update:\n%s", st)
	}
	return out
}

func (m *module) read(rel string) string {
	m.t.Helper()
	b, err := os.ReadFile(filepath.Join(m.dir, rel))
	if err != nil {
		m.t.Fatal(err)
	}
	return string(b)
}

// cleanEnv is the environment without what an enclosing make passes down
// (its command-line variables travel in MAKEFLAGS: an update-spec run with
// ACCEPT_BREAKING=1 must not hand it to the updates these tests make).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ACCEPT_BREAKING", "UPDATE_TEST", "NEW", "PLUGINTOKEN_NO_BROWSER":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

func write(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const tokenPath = "/plugin/{pluginId}/token"

// currentUpstream loads the committed upstream document, YAML or JSON:
// the revisions below are derived from it at test time, so that they
// follow it through every update.
func currentUpstream(t *testing.T) *openapi3.T {
	t.Helper()
	var path string
	for _, name := range []string{"upstream.yaml", "upstream.json"} {
		if _, err := os.Stat(filepath.Join(root, "openapi", name)); err == nil {
			path = filepath.Join(root, "openapi", name)
		}
	}
	if path == "" {
		t.Fatal("no openapi/upstream.yaml or .json")
	}
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Paths.Value(tokenPath) == nil {
		t.Fatalf("the committed upstream document has no %s", tokenPath)
	}
	return doc
}

// derive writes the current upstream document with edit applied (as JSON)
// and returns its path.
func derive(t *testing.T, name string, edit func(doc *openapi3.T)) string {
	t.Helper()
	doc := currentUpstream(t)
	edit(doc)
	b, err := doc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return write(t, name+".json", string(b))
}

// tokenOps are the token operation as upstream documents it (GET, POST or
// both).
func tokenOps(doc *openapi3.T) []*openapi3.Operation {
	item := doc.Paths.Value(tokenPath)
	var ops []*openapi3.Operation
	for _, op := range []*openapi3.Operation{item.Get, item.Post} {
		if op != nil {
			ops = append(ops, op)
		}
	}
	return ops
}

func requestSchema(op *openapi3.Operation) *openapi3.Schema {
	return op.RequestBody.Value.Content.Get("application/json").Schema.Value
}

func answerSchema(op *openapi3.Operation) *openapi3.Schema {
	return op.Responses.Status(200).Value.Content.Get("application/json").Schema.Value
}

// newOperation is an operation plugintoken does not implement, as upstream
// would add it to the token path.
func newOperation() *openapi3.Operation {
	op := openapi3.NewOperation()
	op.Description = "Revoke every token of a plugin (an operation this project does not implement)"
	op.AddParameter(openapi3.NewPathParameter("pluginId").WithSchema(openapi3.NewStringSchema()))
	op.AddResponse(200, openapi3.NewResponse().WithDescription("Revoked.").
		WithJSONSchema(openapi3.NewObjectSchema().WithProperty("revoked", openapi3.NewIntegerSchema())))
	op.Security = &openapi3.SecurityRequirements{{"bearerAuth": []string{}}}
	return op
}

// withoutRefreshExpiresIn drops a required answer property: breaking.
func withoutRefreshExpiresIn(doc *openapi3.T) {
	for _, op := range tokenOps(doc) {
		s := answerSchema(op)
		delete(s.Properties, "refreshExpiresIn")
		s.Required = slices.DeleteFunc(slices.Clone(s.Required), func(n string) bool { return n == "refreshExpiresIn" })
	}
}

// breaking reports whether make spec-diff finds a breaking change in doc.
func breaking(t *testing.T, doc string) bool {
	t.Helper()
	cmd := exec.Command("make", "-s", "spec-diff", "NEW="+doc)
	cmd.Dir = root
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "== breaking changes") {
		t.Fatalf("make spec-diff: %v\n%s", err, out)
	}
	return err != nil
}

// TestUpdatePath runs the update path on copies of the module, one per
// revision, in parallel: each regenerates, builds and passes the API's
// tests without a hand edit, or is refused with nothing changed.
func TestUpdatePath(t *testing.T) {
	needTools(t)
	copies := newCopies(t, 2)

	t.Run("CurrentUpstream", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		current := filepath.Join(root, "openapi", "upstream.yaml")
		if _, err := os.Stat(current); err != nil {
			current = filepath.Join(root, "openapi", "upstream.json")
		}
		m.mustUpdate(current)
		if st := m.git("status", "--porcelain"); st != "" {
			t.Errorf("taking the current upstream again changed the tree:\n%s", st)
		}
	})

	t.Run("EnumScopes", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		doc := filepath.Join(testdata, "teable-get-plugin-token@7d9b99e-get-enum-scopes.yaml")
		// From a document without the enum, narrowing the scopes to it
		// drops record|copy, which was served: breaking, so refused by
		// default.
		if breaking(t, doc) {
			m.refused(doc, "update-spec refused: the new document has breaking changes")
			out := m.mustUpdate(doc, "ACCEPT_BREAKING=1")
			if !strings.Contains(out, "request-property-became-enum") {
				t.Errorf("the breaking change is not named:\n%s", tail(out))
			}
		} else {
			m.mustUpdate(doc)
		}
		served := m.read("gen/openapi.yaml")
		if !strings.Contains(served, "- table_record_history|read") || strings.Contains(served, "x-go-type-name") {
			t.Error("the served document lacks upstream's scope enum")
		}
		// TestOneVocabulary (in the API's tests above) proved the
		// vocabulary is the enum, with our message for a scope outside it.
	})

	t.Run("FullDocument", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		m.browser = true // the largest change of the served document
		gz := filepath.Join(testdata, "teable-openapi-1.10.0.json.gz")
		if breaking(t, gz) {
			m.mustUpdate(gz, "ACCEPT_BREAKING=1")
		} else {
			m.mustUpdate(gz)
		}
		f, err := os.Open(gz)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(zr)
		if m.read("openapi/upstream.json") != string(want) {
			t.Error("openapi/upstream.json is not Teable's document verbatim")
		}
		if _, err := os.Stat(filepath.Join(m.dir, "openapi", "upstream.yaml")); err == nil {
			t.Error("the previous upstream copy was kept beside the new one")
		}
		code := m.read("gen/api.gen.go")
		for _, other := range []string{"/base/{baseId}", "/auth/signup", "/space"} {
			if strings.Contains(code, other) {
				t.Errorf("unselected upstream path %s was generated", other)
			}
		}
		if len(code) > 400_000 {
			t.Errorf("gen/api.gen.go is %d bytes: more than the selection was generated", len(code))
		}
	})

	t.Run("PostDocumented", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		post := derive(t, "post", func(doc *openapi3.T) {
			item := doc.Paths.Value(tokenPath)
			item.Post, item.Get = tokenOps(doc)[0], nil
		})
		m.mustUpdate(post)
		served := m.read("gen/openapi.yaml")
		if !strings.Contains(served, "x-plugintoken-derived-from: post") {
			t.Error("the GET form was not derived from upstream's POST")
		}
	})

	t.Run("AddedOptionalRequestField", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		added := derive(t, "optional", func(doc *openapi3.T) {
			for _, op := range tokenOps(doc) {
				requestSchema(op).WithProperty("state", openapi3.NewStringSchema())
			}
		})
		m.mustUpdate(added)
		if !regexp.MustCompile(`State +\*string +` + "`" + `json:"state,omitempty"` + "`").MatchString(m.read("gen/api.gen.go")) {
			t.Error("the optional field was not generated")
		}
	})

	// A new upstream operation inside the selection builds, and answers 501
	// in Teable's error body until someone writes its method.
	t.Run("NewOperationAnswers501", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		m.mustUpdate(derive(t, "new-operation", func(doc *openapi3.T) {
			doc.Paths.Value(tokenPath).Delete = newOperation()
		}))
		if err := os.MkdirAll(filepath.Join(m.dir, "probe"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.dir, "probe", "main.go"), []byte(probe), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "run", "./probe")
		cmd.Dir = m.dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe: %v\n%s%s", err, out, stderr.String())
		}
		if !strings.HasPrefix(string(out), "501 ") || !strings.Contains(string(out), `"code":"not_implemented"`) || !strings.Contains(string(out), `"status":501`) {
			t.Errorf("the new operation answered %q, want 501 in the error body", out)
		}
	})

	// An optional field added to the answer is not filled by the
	// implementation: TestTokenAnswerFilled stops the update until it is
	// filled or knowingly listed.
	t.Run("AddedAnswerFieldStops", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		added := derive(t, "answer-field", func(doc *openapi3.T) {
			for _, op := range tokenOps(doc) {
				answerSchema(op).WithProperty("tokenType", openapi3.NewStringSchema())
			}
		})
		out := m.refused(added, "openapi/ and gen/ are as they were")
		if !strings.Contains(out, `answers no "tokenType"`) || !strings.Contains(out, "knowinglyUnfilled") {
			t.Errorf("the failure does not point at the unfilled field:\n%s", tail(out))
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		m := copies.get(t)
		m.refused(derive(t, "breaking", withoutRefreshExpiresIn), "update-spec refused: the new document has breaking changes")

		removed := derive(t, "removed", func(doc *openapi3.T) { doc.Paths.Delete(tokenPath) })
		out := m.refused(removed, "update-spec refused: the new document cannot be served")
		if !strings.Contains(out, "removed or renamed") {
			t.Errorf("the refusal does not say the token operation is gone:\n%s", tail(out))
		}
		m.refused(removed, "update-spec refused", "ACCEPT_BREAKING=1")
	})
}

// TestSpecDiff runs `make spec-diff`: a new operation inside the selection
// is reported and not breaking, one outside it changes nothing served, and
// a dropped answer property is breaking.
func TestSpecDiff(t *testing.T) {
	needTools(t)
	diff := func(newDoc string, wantFail bool) string {
		t.Helper()
		cmd := exec.Command("make", "-s", "spec-diff", "NEW="+newDoc)
		cmd.Dir = root
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantFail {
			t.Fatalf("make spec-diff: err = %v, want failure %v\n%s", err, wantFail, out)
		}
		return string(out)
	}
	out := diff(derive(t, "added", func(doc *openapi3.T) { doc.Paths.Value(tokenPath).Delete = newOperation() }), false)
	if !strings.Contains(out, "No breaking changes") || !strings.Contains(out, "endpoint-added") || !strings.Contains(out, "DELETE /plugin/{pluginId}/token") {
		t.Errorf("added operation:\n%s", out)
	}
	out = diff(derive(t, "elsewhere", func(doc *openapi3.T) {
		doc.Paths.Set("/plugin/{pluginId}/publish", &openapi3.PathItem{Post: newOperation()})
	}), false)
	if strings.Contains(out, "publish") {
		t.Errorf("an unselected path shows in the diff of what is served:\n%s", out)
	}
	out = diff(derive(t, "breaking", withoutRefreshExpiresIn), true)
	if !strings.Contains(out, "refreshExpiresIn") || strings.Contains(out, "No breaking changes") {
		t.Errorf("removed response property not reported as breaking:\n%s", out)
	}
}

// probe is a program written into the regenerated copy: it serves the API
// and calls the new operation, printing the status and the body.
const probe = `package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

func main() {
	dir, _ := os.MkdirTemp("", "probe")
	defer os.RemoveAll(dir)
	db, err := boltstore.Open(filepath.Join(dir, "p.db"), boltstore.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	admin, _ := server.StaticTokens("probe-admin-token-0123456789-abcdefgh")
	srv, err := server.New(server.Config{Config: core.Config{Store: db}, Admin: admin})
	if err != nil {
		panic(err)
	}
	e, err := srv.Handler()
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	req, _ := http.NewRequest("DELETE", ts.URL+"/api/plugin/pluXXXXXXXXXXXXXXXX/token", nil)
	req.Header.Set("Authorization", "Bearer probe-admin-token-0123456789-abcdefgh")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("%d %s", res.StatusCode, body)
}
`

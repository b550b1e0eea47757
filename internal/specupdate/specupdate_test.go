// Package specupdate holds the test that an upstream document with an
// operation plugintoken does not implement still builds, and that the
// operation answers 501 in Teable's error body.
package specupdate

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
	req, _ := http.NewRequest("POST", ts.URL+"/api/plugin/pluXXXXXXXXXXXXXXXX/publish", nil)
	req.Header.Set("Authorization", "Bearer probe-admin-token-0123456789-abcdefgh")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("%d %s", res.StatusCode, body)
}
`

func TestNewUpstreamOperationAnswers501(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// A copy of the module, minus what the build does not need.
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case ".git", "data", "artifacts", "bin":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(work, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(work, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	fixture := withNewOperation(t, root)
	if err := os.WriteFile(filepath.Join(work, "openapi", "teable-get-plugin-token.yaml"), fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "probe", "main.go"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	run("generate", "./gen/...")
	gen, err := os.ReadFile(filepath.Join(work, "gen", "api.gen.go"))
	if err != nil || !strings.Contains(string(gen), "/plugin/{pluginId}/publish") {
		t.Fatalf("the regenerated code lacks the new operation (%v)", err)
	}
	run("build", "./...")
	out := run("run", "./probe")
	if !strings.HasPrefix(out, "501 ") || !strings.Contains(out, `"code":"not_implemented"`) || !strings.Contains(out, `"status":501`) {
		t.Errorf("the new operation answered %q, want 501 in the error body", out)
	}
}

// TestSpecDiff runs `make spec-diff` on the fixture (an added operation: not
// breaking) and on a document that drops a response property (breaking).
func TestSpecDiff(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	diff := func(newDoc string, wantFail bool) string {
		t.Helper()
		cmd := exec.Command("make", "-s", "spec-diff", "NEW="+newDoc)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantFail {
			t.Fatalf("make spec-diff: err = %v, want failure %v\n%s", err, wantFail, out)
		}
		return string(out)
	}
	added := filepath.Join(t.TempDir(), "added.yaml")
	if err := os.WriteFile(added, withNewOperation(t, root), 0o644); err != nil {
		t.Fatal(err)
	}
	out := diff(added, false)
	if !strings.Contains(out, "No breaking changes") || !strings.Contains(out, "endpoint-added") || !strings.Contains(out, "POST /plugin/{pluginId}/publish") {
		t.Errorf("added operation:\n%s", out)
	}

	up, err := os.ReadFile(filepath.Join(root, "openapi", "teable-get-plugin-token.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	breaking := strings.Replace(string(up), "                  refreshExpiresIn:\n                    type: number\n", "", 1)
	breaking = strings.Replace(breaking, "                  - refreshExpiresIn\n", "", 1)
	if breaking == string(up) {
		t.Fatal("the breaking edit did not apply")
	}
	path := filepath.Join(t.TempDir(), "breaking.yaml")
	if err := os.WriteFile(path, []byte(breaking), 0o644); err != nil {
		t.Fatal(err)
	}
	out = diff(path, true) // breaking: spec-diff exits non-zero
	if !strings.Contains(out, "refreshExpiresIn") || strings.Contains(out, "No breaking changes") {
		t.Errorf("removed response property not reported as breaking:\n%s", out)
	}
}

// TestUpdateSpecAllOrNothing runs `make update-spec` on a copy of the
// module: a document with breaking changes is refused without
// ACCEPT_BREAKING=1, and one that does not build (its token operation
// removed) is taken back; either way the tree is exactly as before.
func TestUpdateSpecAllOrNothing(t *testing.T) {
	for _, tool := range []string{"make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	work := t.TempDir()
	if out, err := exec.Command("cp", "-a", root+"/.", work).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return string(out)
	}
	_ = os.RemoveAll(filepath.Join(work, ".git"))
	git("init", "-q")
	git("add", "-A")
	git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
	up, err := os.ReadFile(filepath.Join(root, "openapi", "teable-get-plugin-token.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	update := func(args ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-s", "update-spec"}, args...)...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	breaking := strings.Replace(string(up), "                  refreshExpiresIn:\n                    type: number\n", "", 1)
	breaking = strings.Replace(breaking, "                  - refreshExpiresIn\n", "", 1)
	out, err := update("NEW=" + write("breaking.yaml", breaking))
	if err == nil || !strings.Contains(out, "update-spec refused") {
		t.Errorf("breaking document without ACCEPT_BREAKING=1: err = %v\n%s", err, out)
	}
	if st := git("status", "--porcelain"); st != "" {
		t.Errorf("the tree changed after a refusal:\n%s", st)
	}

	// Without its token operation the document cannot build the server.
	i := strings.Index(string(up), "paths:")
	removed := string(up)[:i] + "paths: {}\n" + string(up)[strings.Index(string(up), "components:"):]
	out, err = update("NEW="+write("removed.yaml", removed), "ACCEPT_BREAKING=1")
	if err == nil || !strings.Contains(out, "openapi/ and gen/ are as they were") {
		t.Errorf("document without the token operation: err = %v\n%.2000s", err, out)
	}
	if st := git("status", "--porcelain"); st != "" {
		t.Errorf("the tree changed after a failed update:\n%s", st)
	}
}

// newOperation is a path item plugintoken does not implement, in the
// upstream document's own indentation.
const newOperation = `  /plugin/{pluginId}/publish:
    post:
      tags:
        - plugin
      description: Publish a plugin (an operation this project does not implement)
      parameters:
        - schema:
            type: string
          required: true
          name: pluginId
          in: path
      responses:
        '200':
          description: Published.
          content:
            application/json:
              schema:
                type: object
                properties:
                  id:
                    type: string
      security:
        - bearerAuth: []
`

// withNewOperation is the committed upstream document with newOperation
// added at the end of its paths: derived at test time from the current
// upstream, so that it can never drift from it.
func withNewOperation(t *testing.T, root string) []byte {
	t.Helper()
	up, err := os.ReadFile(filepath.Join(root, "openapi", "teable-get-plugin-token.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	head, tail, ok := strings.Cut(string(up), "\ncomponents:")
	if !ok || !strings.Contains(head, "\npaths:\n") {
		t.Fatal("the upstream document no longer has paths followed by components: adapt withNewOperation")
	}
	return []byte(head + "\n" + newOperation + "components:" + tail)
}

package specupdate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStrictTemplateMatchesPinnedGenerator: gen/templates/strict-interface.tmpl
// is the pinned oapi-codegen's own strict-interface.tmpl plus plugintoken's
// block at the end (marked). When an upgrade of the generator changes its
// template, this fails, so that the copy is brought up to date instead of
// silently keeping stale code (or dropping new code).
func TestStrictTemplateMatchesPinnedGenerator(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-modfile=tools.mod", "-m", "-f", "{{.Dir}} {{.Version}}", "github.com/oapi-codegen/oapi-codegen/v2")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list the pinned generator: %v", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	upstream, err := os.ReadFile(filepath.Join(dir, "pkg", "codegen", "templates", "strict", "strict-interface.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(filepath.Join(root, "gen", "templates", "strict-interface.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "\n{{/* plugintoken: everything below is added to oapi-codegen's strict-interface.tmpl ("
	copied, added, ok := strings.Cut(string(ours), marker)
	if !ok {
		t.Fatal("gen/templates/strict-interface.tmpl lost the marker of plugintoken's block")
	}
	if copied != string(upstream) {
		t.Errorf("the copied part of gen/templates/strict-interface.tmpl differs from oapi-codegen %s's template: copy it again and keep plugintoken's block", version)
	}
	if !strings.HasPrefix(added, version+")") {
		t.Errorf("the block's marker names another generator version than the pinned %s", version)
	}
}

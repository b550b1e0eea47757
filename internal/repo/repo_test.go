// Package repo_test holds checks of the repository itself, not of a package.
package repo_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoBuildOutputsTracked: nothing built is committed. A compiled binary
// in git (an ELF, Mach-O or PE file) is one a clone gets without its source
// being what built it.
func TestNoBuildOutputsTracked(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	magics := [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xcf}, []byte("MZ")}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		f, err := os.Open(filepath.Join("../..", name))
		if err != nil {
			continue // deleted in the work tree
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		f.Close()
		for _, m := range magics {
			if bytes.HasPrefix(head[:n], m) {
				t.Errorf("%s is a compiled binary tracked in git: remove it and ignore it in .gitignore", name)
			}
		}
	}
}

// TestOneGoVersion: every module (and tools.mod) states one go line, and
// the README asks a newcomer for that version.
func TestOneGoVersion(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "*go.mod", "tools.mod").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	versions := map[string][]string{}
	for _, name := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "go "); ok {
				versions[strings.TrimSpace(v)] = append(versions[strings.TrimSpace(v)], name)
			}
		}
	}
	if len(versions) != 1 {
		t.Fatalf("modules state different go lines: %v", versions)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for v := range versions {
		if !strings.Contains(string(readme), "Go "+v) {
			t.Errorf("the README does not ask for Go %s, the modules' go line", v)
		}
	}
}

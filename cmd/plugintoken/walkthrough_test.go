package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// walkthroughScript is the README's curl walkthrough, as a file that runs.
const walkthroughScript = "testdata/walkthrough.sh"

// TestWalkthroughIsTheREADMEs: the README shows exactly the script the next
// test runs, so the walkthrough a newcomer pastes is the one that is tested.
func TestWalkthroughIsTheREADMEs(t *testing.T) {
	script, err := os.ReadFile(walkthroughScript)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Walkthrough with curl")
	if !ok {
		t.Fatal("README has no walkthrough section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the walkthrough section has no sh block")
	}
	if block != string(script) {
		t.Errorf("the README's walkthrough differs from %s; copy the script into the README", walkthroughScript)
	}
}

// TestWalkthroughRuns pastes the walkthrough into bash against the real
// binary, top to bottom, and checks that every step prints what the README
// says under it (a "..." there stands for values that change).
func TestWalkthroughRuns(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	p := startProc(t, filepath.Join(t.TempDir(), "plugintoken.db"))
	script, err := os.ReadFile(walkthroughScript)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-e", "-o", "pipefail", walkthroughScript)
	cmd.Env = append(os.Environ(), "S="+strings.TrimPrefix(p.url, "http://"), "ADMIN="+processAdmin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, out)
	}
	var want []*regexp.Regexp
	for _, line := range strings.Split(string(script), "\n") {
		if c, ok := strings.CutPrefix(line, "# "); ok && (strings.HasPrefix(c, "{") || regexp.MustCompile(`^\d{3}$`).MatchString(c)) {
			want = append(want, regexp.MustCompile("^"+strings.ReplaceAll(regexp.QuoteMeta(c), `\.\.\.`, `.*`)+"$"))
		}
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got = append(got, strings.TrimSpace(l))
	}
	if len(got) != len(want) {
		t.Fatalf("the walkthrough printed %d lines, the README shows %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if !want[i].MatchString(got[i]) {
			t.Errorf("step output %d:\n got  %s\n want %s", i+1, got[i], want[i])
		}
	}
}

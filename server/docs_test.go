package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDocsAssets(t *testing.T) {
	h := newHarness(t)
	res, body := h.do("GET", "/docs", "", "")
	if res.StatusCode != 200 || !strings.Contains(string(body), `openapi.json`) || !strings.Contains(string(body), `/docs/swagger-ui-bundle.js`) {
		t.Fatalf("/docs: %d %s", res.StatusCode, body)
	}
	for path, ctype := range map[string]string{"/docs/swagger-ui-bundle.js": "javascript", "/docs/swagger-ui.css": "text/css"} {
		res, body := h.do("GET", path, "", "")
		if res.StatusCode != 200 || len(body) < 1000 || !strings.Contains(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d, %d bytes, %s", path, res.StatusCode, len(body), res.Header.Get("Content-Type"))
		}
	}
}

// TestDocsPageInChromium renders /docs in Debian's headless Chromium (which
// .ci/run installs), checks that the reference lists the token operation,
// and saves a screenshot in $PLUGINTOKEN_ARTIFACTS (a temporary folder when
// unset).
func TestDocsPageInChromium(t *testing.T) {
	t.Parallel() // slow, and on its own store: beside the other slow ones
	if os.Getenv("PLUGINTOKEN_NO_BROWSER") != "" {
		t.Skip("PLUGINTOKEN_NO_BROWSER is set (the update path's tests render the page for one revision only)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run installs Debian's chromium")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	h := newHarness(t)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1280,1600", "--virtual-time-budget=10000"}
		out, err := exec.CommandContext(ctx, chromium, append(base, args...)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}
	dom := run("--dump-dom", h.url+"/docs")
	for _, want := range []string{"getPluginToken", "postPluginToken", "/plugin/{pluginId}/token", "refreshPluginToken"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered reference does not list %s", want)
		}
	}
	// The screenshot goes where PLUGINTOKEN_ARTIFACTS says (make test sets
	// it to ./artifacts), never into the repository by default.
	dir := os.Getenv("PLUGINTOKEN_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(dir, "docs-page.png"))
	if err != nil {
		t.Fatal(err)
	}
	run("--screenshot="+shot, h.url+"/docs")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

package server_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh folder for the test's
// lifetime: a real file system that really fills up. It needs root (CI and
// the developers' machines run as root); elsewhere the test is skipped and
// says why.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the file system is full, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xAA}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			return path
		}
	}
}

// TestDiskFull fills the file system under a live server: writes answer 503
// with Retry-After (not 500), /readyz answers 503 while writes fail and 200
// once they succeed again, and nothing acknowledged is lost.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	h := newHarnessAt(t, filepath.Join(dir, "plugintoken.db"))
	p := h.createPlugin("table|read")
	var acknowledged []string
	for range 20 {
		acknowledged = append(acknowledged, h.token(p, "table|read").AccessToken)
	}
	filler := fill(t, dir)

	// Exchanges grow the file until a commit cannot be written.
	saw503 := false
	check503 := func(status int, header http.Header, body []byte) {
		t.Helper()
		saw503 = true
		checkError(t, status, body, http.StatusServiceUnavailable, "service_unavailable", "")
		if header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	for i := 0; i < 5000 && !saw503; i++ {
		code, err := h.admin.CreateAuthCodeWithResponse(ctx, p.ID, gen.AuthCodeRequest{BaseID: "bse1"})
		if err != nil {
			t.Fatal(err)
		}
		if code.StatusCode() != http.StatusOK {
			if code.StatusCode() != http.StatusServiceUnavailable {
				t.Fatalf("auth code on a full disk: %d %s, want 200 or 503", code.StatusCode(), code.Body)
			}
			check503(code.StatusCode(), code.HTTPResponse.Header, code.Body)
			break
		}
		res := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code.JSON200.Code, "table|read"))
		switch res.StatusCode() {
		case http.StatusOK:
			acknowledged = append(acknowledged, res.JSON200.AccessToken)
		case http.StatusServiceUnavailable:
			check503(res.StatusCode(), res.HTTPResponse.Header, res.Body)
		default:
			t.Fatalf("exchange on a full disk: %d %s, want 200 or 503", res.StatusCode(), res.Body)
		}
	}
	if !saw503 {
		t.Fatal("the disk never filled up: the test proved nothing")
	}
	res, body := h.do("GET", "/readyz", "", "")
	checkError(t, res.StatusCode, body, http.StatusServiceUnavailable, "service_unavailable", "")
	if res.Header.Get("Retry-After") == "" {
		t.Error("/readyz 503 without Retry-After")
	}
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a full disk was logged as an internal error:\n%s", grepLines(h.logs.String(), "level=ERROR"))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if res, body := h.do("GET", "/readyz", "", ""); res.StatusCode != 200 {
		t.Fatalf("/readyz after space came back: %d %s", res.StatusCode, body)
	}
	h.checkActive(true, acknowledged...)
	h.checkActive(true, h.token(p, "table|read").AccessToken)
}

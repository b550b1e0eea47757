package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// serveOnce runs `plugintoken serve` with args and env until it exits (it
// must, on its own, within 20 s) and returns its exit error and stderr.
func serveOnce(t *testing.T, env []string, args ...string) (error, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mustBuild(t), append([]string{"serve", "--addr", freePort(t)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve did not exit on its own: %s", stderr.String())
	}
	return err, stderr.String()
}

// TestServeDamagedFile starts the binary on database files damaged in the
// ways disks and careless copies damage them: it must exit non-zero with one
// clear line naming the file, never a Go panic and stack trace.
func TestServeDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := db.CreatePlugin(context.Background(), store.Plugin{ID: "plugin-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Scopes: []string{"table|read"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"Truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"GarbagePage": func(b []byte) []byte {
			for i := 2 * 4096; i < 3*4096; i++ {
				b[i] = byte(i * 7)
			}
			return b
		},
		"BadPageFlags": func(b []byte) []byte {
			for pg := 2; pg*4096 < len(b); pg++ {
				b[pg*4096+8], b[pg*4096+9] = 0x77, 0x77
			}
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			damaged := filepath.Join(t.TempDir(), "plugintoken.db")
			if err := os.WriteFile(damaged, damage(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			err, stderr := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin}, "--db", damaged)
			if err == nil {
				t.Fatal("serve exited 0 on a damaged file")
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("serve panicked:\n%s", stderr)
			}
			if !strings.Contains(last, damaged) || !strings.Contains(last, "damaged") {
				t.Errorf("last line %q does not say the file %s is damaged", last, damaged)
			}
		})
	}
}

// TestServeRefusesWeakAdminToken: an admin token too short to be a bearer
// credential is refused at start with a clear error, before anything is
// written.
func TestServeRefusesWeakAdminToken(t *testing.T) {
	dir := t.TempDir()
	err, stderr := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=short-but-sixteen-chars"}, "--db", filepath.Join(dir, "plugintoken.db"))
	if err == nil {
		t.Fatal("serve accepted a 23-character admin token")
	}
	if !strings.Contains(stderr, "too short") || !strings.Contains(stderr, "32") {
		t.Errorf("stderr does not explain the refusal: %s", stderr)
	}
}

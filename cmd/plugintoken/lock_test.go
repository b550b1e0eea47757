//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/internal/procstatus"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// locked is the memory the process pid has locked, in bytes.
func locked(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := procstatus.Locked(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// lockFile writes a database file of a few hundred KiB: small enough that
// the default memlock limit (8 MiB) lets any user lock it.
func lockFile(t *testing.T) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if err := db.CreatePlugin(context.Background(), store.Plugin{ID: fmt.Sprintf("plg%016d", i), Name: strings.Repeat("n", 100), Scopes: []string{"table|read"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, st.Size()
}

// TestServeLocksTheFileInMemory starts the binary with -db-lock-in-memory:
// the process has the whole file locked while it serves; without the flag
// it has nothing locked.
func TestServeLocksTheFileInMemory(t *testing.T) {
	path, size := lockFile(t)
	p := startProc(t, path, "--db-lock-in-memory")
	if got := locked(t, p.cmd.Process.Pid); got < size {
		t.Errorf("with -db-lock-in-memory the process has %d bytes locked, less than the file's %d", got, size)
	}
	// It serves: a plugin is created, and the file stays locked.
	res, err := p.client(t).CreatePluginWithResponse(context.Background(), gen.CreatePluginRequest{Name: "locked"})
	if err != nil || res.JSON201 == nil {
		t.Fatalf("create plugin: %v %s", err, res.Body)
	}
	if st, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if got := locked(t, p.cmd.Process.Pid); got < st.Size() {
		t.Errorf("after a write the process has %d bytes locked, less than the file's %d", got, st.Size())
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}

	p = startProc(t, path)
	if got := locked(t, p.cmd.Process.Pid); got != 0 {
		t.Errorf("without the flag the process has %d bytes locked", got)
	}
}

// TestServeRefusesWhatItCannotLock starts the binary with
// -db-lock-in-memory where it may lock nothing (a memlock limit of zero,
// and for root no CAP_IPC_LOCK): it must exit at once with one line that
// names the limit and what to change, not serve with the file unlocked.
func TestServeRefusesWhatItCannotLock(t *testing.T) {
	for _, tool := range []string{"prlimit", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (util-linux)", tool)
		}
	}
	path, _ := lockFile(t)
	var wrap []string
	if os.Geteuid() == 0 { // root may lock anything while it has CAP_IPC_LOCK
		wrap = []string{"setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock"}
	}
	out, err := serveOnceUnder(t, append(wrap, "prlimit", "--memlock=0:0"), []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin},
		"--db", path, "--db-lock-in-memory")
	if err == nil {
		t.Fatalf("serve ran with the file unlocked:\n%s", out)
	}
	for _, want := range []string{path, "lock the file in memory (LockInMemory)", "RLIMIT_MEMLOCK", "LimitMEMLOCK=", "CAP_IPC_LOCK"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "goroutine ") || strings.Count(strings.TrimSpace(out), "\n") > 2 {
		t.Errorf("want one clear line, got:\n%s", out)
	}
	// The file is as it was: it opens without the flag.
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Plugin(context.Background(), fmt.Sprintf("plg%016d", 1999)); err != nil {
		t.Error(err)
	}
	_ = db.Close()
}

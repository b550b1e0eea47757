//go:build linux

package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/plugintoken/plugintoken/internal/procstatus"
	"github.com/plugintoken/plugintoken/store"
	bolt "go.etcd.io/bbolt"
)

// lockedBytes is the memory this process has locked.
func lockedBytes(t *testing.T) int64 {
	t.Helper()
	n, err := procstatus.Locked(0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLockInMemory opens a file with LockInMemory: the whole file is
// locked, and stays so as writes grow it (bbolt maps it again); Close
// unlocks it.
func TestLockInMemory(t *testing.T) {
	before := lockedBytes(t)
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := Open(path, Options{LockInMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if got := lockedBytes(t) - before; got < size() {
		t.Errorf("locked %d bytes of a %d-byte file", got, size())
	}
	first := size()
	// Small enough for the default memlock limit (8 MiB), so that any
	// user can run this.
	for i := range 3000 {
		if err := db.CreatePlugin(context.Background(), store.Plugin{ID: fmt.Sprintf("plg%016d", i), Name: strings.Repeat("n", 200), Scopes: []string{"table|read"}}); err != nil {
			t.Fatal(err)
		}
	}
	if size() <= first {
		t.Fatalf("the file did not grow (%d bytes)", size())
	}
	if got := lockedBytes(t) - before; got < size() {
		t.Errorf("after the file grew to %d bytes, %d are locked", size(), got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := lockedBytes(t); got != before {
		t.Errorf("after Close %d bytes are locked, %d before Open", got, before)
	}
}

// TestLockErrorSaysWhatToChange: a refusal of mlock names the limit and
// what lifts it; any other error is left as it is.
func TestLockErrorSaysWhatToChange(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOMEM, syscall.EAGAIN} {
		err := openError("/data/p.db", 0, lockError(fmt.Errorf("mmap: %w", errno), 5<<20))
		for _, want := range []string{"/data/p.db", "LockInMemory", "needs 5120 KiB locked", "RLIMIT_MEMLOCK", "LimitMEMLOCK=", "CAP_IPC_LOCK"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %q does not say %q", errno, err, want)
			}
		}
		if !errors.Is(err, errno) {
			t.Errorf("%v is not kept for errors.Is: %v", errno, err)
		}
	}
	other := errors.New("something else")
	if got := lockError(other, 1); got != other {
		t.Errorf("lockError(%v) = %v", other, got)
	}
	if got := lockError(syscall.EIO, 1); got != syscall.EIO {
		t.Errorf("lockError(EIO) = %v", got)
	}
}

// TestOpenDBRefusesLockInMemory: the host's file is the host's to lock, so
// OpenDB refuses the option rather than ignore it.
func TestOpenDBRefusesLockInMemory(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "host.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := OpenDB(b, Options{LockInMemory: true}); err == nil || !strings.Contains(err.Error(), "Options.Mlock") {
		t.Errorf("OpenDB with LockInMemory: %v, want a refusal naming bbolt's Options.Mlock", err)
	}
}

package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/internal/damage"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

var ctx = context.Background()

// MustOpen opens a store in a fresh temporary folder and closes it when the
// test ends.
func MustOpen(tb testing.TB) *boltstore.DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "data", "plugintoken.db"))
}

func mustOpenAt(tb testing.TB, path string, opts ...boltstore.Options) *boltstore.DB {
	tb.Helper()
	var o boltstore.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	db, err := boltstore.Open(path, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// The fixtures are the conformance suite's (package storetest).
var (
	t0               = storetest.T0
	ref              = storetest.Ref
	redemption       = storetest.Redemption
	redemptionOf     = storetest.RedemptionOf
	accessRef        = storetest.AccessRef
	refreshRef       = storetest.RefreshRef
	seed             = storetest.Seed
	mustCreatePlugin = storetest.MustCreatePlugin
	mustCreateCode   = storetest.MustCreateCode
)

func TestOpen(t *testing.T) {
	t.Run("FileIsPrivate", func(t *testing.T) {
		db := MustOpen(t)
		st, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("mode = %v, want %v", got, want)
		}
		dir, err := os.Stat(filepath.Dir(db.Path()))
		if err != nil {
			t.Fatal(err)
		}
		if got := dir.Mode().Perm(); got&0o077 != 0 {
			t.Errorf("folder mode = %v, want no group/other access", got)
		}
	})
	t.Run("ErrLocked", func(t *testing.T) {
		db := MustOpen(t)
		start := time.Now()
		_, err := boltstore.Open(db.Path(), boltstore.Options{LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, boltstore.ErrLocked) {
			t.Fatalf("second Open: err = %v, want ErrLocked", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("second Open took %s", d)
		}
	})
	t.Run("ErrSchemaVersion", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.db")
		db := mustOpenAt(t, path)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		boltstore.SetSchemaVersionForTest(t, path, "999")
		_, err := boltstore.Open(path, boltstore.Options{})
		if err == nil || !strings.Contains(err.Error(), `schema version "999"`) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open of a file with another schema version: %v, want an error naming the file and its version", err)
		}
	})
}

func TestRestartKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db := mustOpenAt(t, path)
	seed(t, db)
	r := redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	mustCreateCode(t, db, "code2", "plu1", "bse1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenAt(t, path)
	if _, err := db.Token(ctx, accessRef(r.Grant)); err != nil {
		t.Errorf("access token lost across restart: %v", err)
	}
	if _, err := db.Token(ctx, refreshRef(r.Grant)); err != nil {
		t.Errorf("refresh token lost across restart: %v", err)
	}
	if err := db.RedeemAuthCode(ctx, redemption("b")); !errors.Is(err, store.ErrCodeReplayed) {
		t.Errorf("consumed code after restart: err = %v, want ErrCodeReplayed", err)
	}
	r2 := redemptionOf("code2", "c")
	if err := db.RedeemAuthCode(ctx, r2); err != nil {
		t.Errorf("unused code not redeemable after restart: %v", err)
	}
}

func TestNewKeySortsByTime(t *testing.T) {
	a, b := store.NewKey(t0), store.NewKey(t0.Add(time.Millisecond))
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Errorf("key of a later token sorts first: %s, %s", a, b)
	}
	c, d := store.NewKey(t0), store.NewKey(t0)
	if c == d {
		t.Error("two keys of the same millisecond are equal")
	}
	// Within a millisecond, keys sort by its fraction (in 16 ns steps), so
	// grants written in issue order are appended.
	for i := range 100 {
		e, f := store.NewKey(t0.Add(time.Duration(16*i)*time.Nanosecond)), store.NewKey(t0.Add(time.Duration(16*(i+1))*time.Nanosecond))
		if bytes.Compare(e[:], f[:]) >= 0 {
			t.Fatalf("a key issued 16 ns later sorts first: %x, %x", e, f)
		}
	}
}

// TestOpenDamaged opens files damaged in the ways disks and careless copies
// damage them. Each must fail with one error naming the file, never a panic
// (bbolt's open-time page walk used to panic in a goroutine of its own, which
// no recover can catch, and killed the process with a stack trace).
func TestOpenDamaged(t *testing.T) {
	build := func(t *testing.T) (string, []byte) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "plugintoken.db")
		db := mustOpenAt(t, path)
		for i := range 300 {
			mustCreatePlugin(t, db, "plugin-"+strconv.Itoa(i))
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 8*4096 {
			t.Fatalf("fixture too small (%d bytes) to damage its data pages", len(raw))
		}
		return path, raw
	}
	for name, damage := range damage.Kinds() {
		t.Run(name, func(t *testing.T) {
			path, raw := build(t)
			if err := os.WriteFile(path, damage(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := boltstore.Open(path, boltstore.Options{})
			if err == nil {
				_ = db.Close()
				t.Fatal("a damaged file opened without an error")
			}
			if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line naming the file: %q", err)
			}
			if !errors.Is(err, boltstore.ErrDamaged) {
				t.Errorf("error is not ErrDamaged: %q", err)
			}
		})
	}
}

// blockedWriter is a backup reader that stops reading: its first Write
// blocks until release is closed.
type blockedWriter struct{ started, release chan struct{} }

func (w *blockedWriter) Write(p []byte) (int, error) {
	select {
	case <-w.started:
	default:
		close(w.started)
	}
	<-w.release
	return len(p), nil
}

// TestBackupSlowReaderDoesNotStallWriters holds a backup whose reader has
// stopped reading while the database grows: every write must still commit.
// (When the backup streamed from its read transaction, the transaction
// stayed open as long as the slowest client, and a write that had to grow
// the file waited for it.)
func TestBackupSlowReaderDoesNotStallWriters(t *testing.T) {
	db := MustOpen(t)
	mustCreatePlugin(t, db, "plu1")
	w := &blockedWriter{started: make(chan struct{}), release: make(chan struct{})}
	backupDone := make(chan error, 1)
	go func() { backupDone <- db.Backup(ctx, w, func(int64) {}) }()
	<-w.started
	defer func() {
		close(w.release)
		if err := <-backupDone; err != nil {
			t.Error(err)
		}
	}()
	writes := make(chan error, 1)
	go func() {
		for i := range 3000 { // grows the file through several remaps
			if err := db.CreateAuthCode(ctx, store.AuthCode{Key: store.NewKey(t0), Secret: store.HashOf(strconv.Itoa(i)),
				PluginID: "plu1", BaseID: strings.Repeat("b", 200), IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				writes <- err
				return
			}
		}
		writes <- nil
	}()
	select {
	case err := <-writes:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writes stalled behind a backup whose reader stopped reading")
	}
	if size := db.Size(); size < 1<<20 {
		t.Errorf("the file grew to %d bytes only: no remap was needed, the test proved nothing", size)
	}
}

// TestWrongSecretIsACacheAnswer: a token presented with a wrong secret
// half for a key that exists is answered from the cache once the grant has
// been read, as the right one is: presenting made-up secrets for a known
// key is no lever for making the store read its file on every request.
func TestWrongSecretIsACacheAnswer(t *testing.T) {
	db := mustOpenAt(t, filepath.Join(t.TempDir(), "plugintoken.db"))
	seed(t, db)
	r := redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	wrong := accessRef(r.Grant)
	wrong.Secret = store.HashOf("guess")
	if _, err := db.Token(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("wrong secret: %v, want ErrNotFound", err)
	}
	before := boltstore.BoltStats(db).TxN
	for range 10 {
		if _, err := db.Token(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("wrong secret: %v, want ErrNotFound", err)
		}
	}
	if n := boltstore.BoltStats(db).TxN - before; n != 0 {
		t.Errorf("10 lookups with a wrong secret opened %d read transactions, want 0", n)
	}
	if tok, err := db.Token(ctx, accessRef(r.Grant)); err != nil || tok == nil {
		t.Errorf("the right secret after wrong ones: %v", err)
	}
}

// TestBackupWithoutReady: ready is optional; the copy opens.
func TestBackupWithoutReady(t *testing.T) {
	db := MustOpen(t)
	var buf bytes.Buffer
	if err := db.Backup(context.Background(), &buf, nil); err != nil {
		t.Fatalf("Backup(ctx, w, nil): %v", err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenAt(t, path)
}

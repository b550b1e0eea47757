package boltstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// damageLeafHolding points every element of each leaf page that holds key
// past the end of the file (the damage package's pos shape), as a disk
// that lost a page would leave it.
func damageLeafHolding(t *testing.T, path string, key []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	hit := false
	for pg := 2; (pg+1)*pageSize <= len(b); pg++ {
		page := b[pg*pageSize : (pg+1)*pageSize]
		if binary.LittleEndian.Uint64(page) != uint64(pg) || binary.LittleEndian.Uint16(page[8:]) != 0x02 || !bytes.Contains(page, key) {
			continue
		}
		n := int(binary.LittleEndian.Uint16(page[10:]))
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(page[16+16*i+4:], 0x7fff0000)
		}
		hit = true
	}
	if !hit {
		t.Fatal("no leaf page holds the key")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamageFoundInTheBackground: a file Close closed reopens without the
// walk of every element (check.go); the walk runs in the background, and a
// page of tokens it finds damaged makes Ping fail with ErrDamaged, while a
// lookup that meets the page fails with it too, without taking the
// process down. The same file after an unclean stop (no freelist written)
// is refused at open, as before.
func TestDamageFoundInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db, err := boltstore.Open(path, boltstore.Options{TokenCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, db)
	keys := boltstore.FillGrantsForTest(t, db, 3000, t0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mid := keys[len(keys)/2]
	damageLeafHolding(t, path, mid[:])

	db, err = boltstore.Open(path, boltstore.Options{TokenCacheSize: -1})
	if err != nil {
		t.Fatalf("a cleanly closed file with a damaged page of tokens: Open = %v, want the damage left to the background check", err)
	}
	if !boltstore.BackgroundCheckForTest(db) {
		t.Fatal("Open ran no background check")
	}
	if err := db.Ping(ctx); !errors.Is(err, boltstore.ErrDamaged) {
		t.Errorf("Ping after the background check: %v, want ErrDamaged", err)
	}
	if _, err := db.Token(ctx, store.Ref{Key: mid}); !errors.Is(err, boltstore.ErrDamaged) {
		t.Errorf("a lookup on the damaged page: %v, want ErrDamaged", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// Close wrote no freelist to a damaged file: the next open walks
	// everything, and refuses it.
	if db, err := boltstore.Open(path, boltstore.Options{}); !errors.Is(err, boltstore.ErrDamaged) {
		if err == nil {
			_ = db.Close()
		}
		t.Errorf("reopening the damaged file: %v, want ErrDamaged", err)
	}
}

// TestCleanCloseSkipsTheWalk: after Close, Open leaves the walk to the
// background; after an unclean stop (the freelist of the last commit not
// written) it walks everything first, and nothing is in the background.
func TestCleanCloseSkipsTheWalk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, db)
	// A copy of the file while it is open is what a crash leaves.
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		path       string
		background bool
	}{{"AfterClose", path, true}, {"AfterCrash", crashed, false}} {
		db, err := boltstore.Open(tc.path, boltstore.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := boltstore.BackgroundCheckForTest(db); got != tc.background {
			t.Errorf("%s: background check %v, want %v", tc.name, got, tc.background)
		}
		if err := db.Ping(ctx); err != nil {
			t.Errorf("%s: Ping: %v", tc.name, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupToAFileIsWhole: a backup written to a local file (the kernel
// copy of the data pages, backup.go) opens, passes bbolt's full check and
// the walk of every element, and holds every grant.
func TestBackupToAFileIsWhole(t *testing.T) {
	dir := t.TempDir()
	db, err := boltstore.Open(filepath.Join(dir, "plugintoken.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, db)
	keys := boltstore.FillGrantsForTest(t, db, 3000, t0)
	f, err := os.Create(filepath.Join(dir, "backup.db"))
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	if err := db.Backup(ctx, f, func(n int64) { size = n }); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(f.Name()); err != nil || st.Size() != size {
		t.Fatalf("backup of %d bytes announced, %v on disk (%v)", size, st, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cp, err := boltstore.Open(f.Name(), boltstore.Options{}) // not closed by Close: the whole walk first
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	if err := cp.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(f.Name(), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error {
		g := tx.Bucket([]byte("grants"))
		if n := g.Stats().KeyN; n != len(keys) {
			t.Errorf("the backup holds %d grants, want %d", n, len(keys))
		}
		for _, k := range keys {
			if g.Get(k[:]) == nil {
				t.Fatalf("grant %x is not in the backup", k)
			}
		}
		return nil
	})
}

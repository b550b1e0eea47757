package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// TestConformance runs the suite every backend must pass against bbolt.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) store.Store { return MustOpen(tb) })
}

// TestSweepInChunks sweeps more records than one sweep transaction takes.
func TestSweepInChunks(t *testing.T) {
	db := MustOpen(t)
	mustCreatePlugin(t, db, "plu1")
	const n = 2500
	for i := range n {
		mustCreateCode(t, db, "c"+string(rune(i+0x4e00)), "plu1", "bse1")
	}
	res, err := db.Sweep(ctx, t0.Add(time.Hour))
	if err != nil || res.Codes != n {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	if _, err := db.AuthCode(ctx, ref("c"+string(rune(0x4e00))).Key); err != store.ErrNotFound {
		t.Errorf("swept code still there: %v", err)
	}
}

// TestConformanceInHostDB runs the suite on plugintoken's buckets inside a
// bbolt database a host application already has open (OpenDB), beside a
// bucket of the host's own, which must come out untouched.
func TestConformanceInHostDB(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) store.Store {
		b, err := bolt.Open(filepath.Join(tb.TempDir(), "gateway.db"), 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		if err := b.Update(func(tx *bolt.Tx) error {
			host, err := tx.CreateBucket([]byte("sessions"))
			if err != nil {
				return err
			}
			return host.Put([]byte("alice"), []byte("signed-in"))
		}); err != nil {
			tb.Fatal(err)
		}
		db, err := boltstore.OpenDB(b, boltstore.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := db.Close(); err != nil {
				tb.Error(err)
			}
			// Close left the host's database open, and its data as it was.
			if err := b.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket([]byte("sessions")).Get([]byte("alice")); string(v) != "signed-in" {
					tb.Errorf("the host's data changed: %q", v)
				}
				if tx.Bucket([]byte("plugins")) != nil || tx.Bucket([]byte("plugintoken")).Bucket([]byte("plugins")) == nil {
					tb.Error("plugintoken's buckets are not under its own top-level bucket")
				}
				return nil
			}); err != nil {
				tb.Errorf("the host's database was closed: %v", err)
			}
			_ = b.Close()
		})
		return db
	})
}

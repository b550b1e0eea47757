package boltstore

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

// TestMigrationSurvivesSIGKILL migrates a schema 3 file of 100,000 records
// in a child process killed with SIGKILL at growing delays, until one run
// finishes: every kill leaves a file that opens, loses no record and
// changes none, and the last open finds the migration done, with an expiry
// entry for every record.
func TestMigrationSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	makeSchema3(t, path, 50_000)
	before := recordsDigest(t, path)

	interrupted := 0
	for delay := 5 * time.Millisecond; ; delay *= 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateChild$")
		cmd.Env = append(os.Environ(), "PLUGINTOKEN_MIGRATE_FILE="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		schema, entries := schemaAndEntries(t, path)
		if got := recordsDigest(t, path); got != before {
			t.Fatalf("after a SIGKILL at %s the records changed", delay)
		}
		if schema == codec.SchemaVersion {
			break
		}
		if entries > 0 {
			interrupted++
		}
		if delay > 5*time.Minute {
			t.Fatal("the migration never finished")
		}
	}
	if interrupted == 0 {
		t.Error("no SIGKILL landed during the migration: the test proved nothing (the migration was too quick to interrupt)")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var codes, grants, entries int
	_ = db.view(t.Context(), func(tx txn) error {
		codes = tx.Bucket(bucketCodes).Stats().KeyN
		grants = tx.Bucket(bucketGrants).Stats().KeyN
		entries = tx.Bucket(bucketExpiry).Stats().KeyN
		return nil
	})
	if entries != codes+grants {
		t.Errorf("%d expiry entries for %d codes and %d grants", entries, codes, grants)
	}
	t.Logf("%d SIGKILLs landed during the migration", interrupted)
}

// TestMigrateChild is TestMigrationSurvivesSIGKILL's child: it opens the
// file (which migrates it) and closes it.
func TestMigrateChild(t *testing.T) {
	path := os.Getenv("PLUGINTOKEN_MIGRATE_FILE")
	if path == "" {
		t.Skip("run by TestMigrationSurvivesSIGKILL")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
}

// makeSchema3 writes a file as schema 3 had it: n codes and n grants
// (records are the same in both versions) and no expiry index.
func makeSchema3(t *testing.T, path string, n int) {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for done := 0; done < n; {
		if err := db.write(func(tx txn) error {
			for i := 0; i < 10_000 && done < n; i, done = i+1, done+1 {
				c := store.AuthCode{Key: store.NewKey(t0), PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), RedeemedAt: t0}
				g := store.Grant{Key: store.NewGrantKey(c.Key), PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"},
					IssuedAt: t0, AccessExpiresAt: t0.Add(time.Hour), RefreshExpiresAt: t0.Add(24 * time.Hour)}
				if err := tx.Bucket(bucketCodes).Put(c.Key[:], codec.EncodeAuthCodeV1(&c)); err != nil {
					return err
				}
				if err := tx.Bucket(bucketGrants).Put(g.Key[:], codec.EncodeGrantV1(&g)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketMeta).Put(keySchema, []byte(codec.UnindexedSchemaVersion)); err != nil {
				return err
			}
			if tx.Tx.Bucket(bucketExpiry) != nil {
				return tx.DeleteBucket(bucketExpiry)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// recordsDigest is a digest of every code and grant, keys and values.
func recordsDigest(t *testing.T, path string) [32]byte {
	t.Helper()
	h := sha256.New()
	withFile(t, path, func(tx *bolt.Tx) {
		for _, name := range [][]byte{bucketCodes, bucketGrants} {
			_ = tx.Bucket(name).ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				return nil
			})
		}
	})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// schemaAndEntries reads the schema version and counts expiry entries.
func schemaAndEntries(t *testing.T, path string) (string, int) {
	t.Helper()
	var schema string
	var n int
	withFile(t, path, func(tx *bolt.Tx) {
		schema = string(bytes.Clone(tx.Bucket(bucketMeta).Get(keySchema)))
		if b := tx.Bucket(bucketExpiry); b != nil {
			n = b.Stats().KeyN
		}
	})
	return schema, n
}

func withFile(t *testing.T, path string, fn func(*bolt.Tx)) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error { fn(tx); return nil })
}

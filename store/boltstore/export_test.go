package boltstore

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/store"
)

// SetSchemaVersionForTest rewrites meta/schema of a closed store file.
func SetSchemaVersionForTest(tb testing.TB, path, version string) {
	tb.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(version))
	}); err != nil {
		tb.Fatal(err)
	}
}

// BoltStats exposes bbolt's statistics to benchmarks.
func BoltStats(db *DB) bolt.Stats { return db.bolt.Stats() }

// CommitStats counts the group commit's work since Open: write transactions
// committed (one fsync each), and the write calls they carried.
type CommitStats struct{ Commits, Writes int64 }

// CommitStatsOf reports how many commits and writes db has made.
func CommitStatsOf(db *DB) CommitStats {
	return CommitStats{Commits: db.commit.commits.Load(), Writes: db.commit.writes.Load()}
}

// FillGrantsForTest writes n grants of plugin plu1 (which must exist) in
// one transaction and returns their keys, in key order.
func FillGrantsForTest(tb testing.TB, db *DB, n int, now time.Time) []store.Key {
	tb.Helper()
	keys := make([]store.Key, n)
	if err := db.write(func(tx txn) error {
		for i := range keys {
			g := store.Grant{Key: store.NewGrantKey(store.NewKey(now)), AccessSecret: store.HashOf(fmt.Sprint("a", i)), RefreshSecret: store.HashOf(fmt.Sprint("r", i)),
				PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"}, IssuedAt: now, AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}
			keys[i] = g.Key
			if err := putGrant(tx, &g); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	slices.SortFunc(keys, func(a, b store.Key) int { return bytes.Compare(a[:], b[:]) })
	return keys
}

// BackgroundCheckForTest waits for the background check Open started and
// reports whether there was one.
func BackgroundCheckForTest(db *DB) bool {
	if db.check == nil {
		return false
	}
	<-db.check.done
	return true
}

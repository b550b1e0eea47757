package boltstore

import (
	"testing"

	bolt "go.etcd.io/bbolt"
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

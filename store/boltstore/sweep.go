package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// sweepChunk bounds how many records one sweep transaction looks at, so that
// a sweep never holds the write lock for long.
const sweepChunk = 1000

// Sweep deletes what can no longer be used or recognised at now (see
// SweepVerdict). It works in small transactions and stops early, with what
// it did so far, when ctx is done. A record that does not decode is skipped
// and named in the result.
func (db *DB) Sweep(ctx context.Context, now time.Time) (store.SweepResult, error) {
	plugins := map[string]bool{}
	res, err := decide.Sweeping(func(isGrant bool, undecodable func(string)) (int, error) {
		bucket := bucketCodes
		if isGrant {
			bucket = bucketGrants
		}
		return sweepBucket(ctx, db, bucket, func(tx txn, k, v []byte) (bool, error) {
			gone, bad, err := decide.SweepVerdict(isGrant, v, now, func(id string) (bool, error) {
				ok, seen := plugins[id]
				if !seen {
					ok = tx.Bucket(bucketPlugins).Get([]byte(id)) != nil
					plugins[id] = ok
				}
				return ok, nil
			})
			if bad {
				undecodable(fmt.Sprintf("%s/%x", bucket, k))
			}
			return gone, err
		})
	})
	if err == nil {
		db.cache.evictExpired(now)
	}
	return res, err
}

// sweepBucket walks bucket in chunks of sweepChunk keys, each read in a
// read transaction, and deletes the keys that expired says to in a write
// transaction that asks expired again of each (the record may have changed
// in between). A chunk with nothing to delete writes nothing: a sweep that
// finds nothing expired costs no commit, no fsync and no wait for the write
// lock, however many records there are.
func sweepBucket(ctx context.Context, db *DB, bucket []byte,
	expired func(tx txn, k, v []byte) (bool, error),
) (int, error) {
	var removed int
	var next []byte
	for first := true; first || next != nil; first = false {
		var doomed [][]byte
		err := db.view(ctx, func(tx txn) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.First()
			if next != nil {
				k, v = c.Seek(next)
			}
			next = nil
			for i := 0; k != nil; k, v = c.Next() {
				if i == sweepChunk {
					next = bytes.Clone(k)
					break
				}
				i++
				gone, err := expired(tx, k, v)
				if err != nil {
					return err
				}
				if gone {
					doomed = append(doomed, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		if len(doomed) == 0 {
			continue
		}
		var n int
		err = db.write(func(tx txn) error {
			n = 0
			b := tx.Bucket(bucket)
			for _, k := range doomed {
				v := b.Get(k)
				if v == nil {
					continue
				}
				gone, err := expired(tx, k, v)
				if err != nil {
					return err
				}
				if !gone {
					continue
				}
				if err := b.Delete(k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += n
	}
	return removed, nil
}

package store

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepChunk bounds how many records one sweep transaction looks at, so that
// a sweep never holds the write lock for long.
const sweepChunk = 1000

// SweepResult counts what Sweep removed.
type SweepResult struct {
	// Codes and Grants removed; a grant is an access and a refresh token.
	Codes, Grants int
}

// Sweep deletes what can no longer be used or recognised at now: auth codes
// (redeemed or not) past their expiry, grants whose tokens have both
// expired (rotated ones included), and the codes and grants of deleted
// plugins. It
// works in small transactions and stops early, with what it did so far,
// when ctx is done.
func (db *DB) Sweep(ctx context.Context, now time.Time) (SweepResult, error) {
	var res SweepResult
	plugins := map[string]bool{}
	pluginExists := func(tx *bolt.Tx, id string) bool {
		ok, seen := plugins[id]
		if !seen {
			ok = tx.Bucket(bucketPlugins).Get([]byte(id)) != nil
			plugins[id] = ok
		}
		return ok
	}
	n, err := sweepBucket(ctx, db, bucketCodes, func(tx *bolt.Tx, k, v []byte) (bool, error) {
		var c AuthCode
		if err := decode(bucketCodes, k, v, &c); err != nil {
			return false, err
		}
		return !now.Before(c.ExpiresAt) || !pluginExists(tx, c.PluginID), nil
	}, func(tx *bolt.Tx, k []byte) error {
		return tx.Bucket(bucketCodes).Delete(k)
	})
	res.Codes = n
	if err != nil {
		return res, err
	}
	n, err = sweepBucket(ctx, db, bucketGrants, func(tx *bolt.Tx, k, v []byte) (bool, error) {
		var g Grant
		if err := decode(bucketGrants, k, v, &g); err != nil {
			return false, err
		}
		return !now.Before(g.expiresAt()) || !pluginExists(tx, g.PluginID), nil
	}, func(tx *bolt.Tx, k []byte) error {
		return tx.Bucket(bucketGrants).Delete(k)
	})
	res.Grants = n
	db.cache.evictExpired(now)
	return res, err
}

// sweepBucket walks bucket in chunks of sweepChunk keys, one write
// transaction each, deleting the keys that expired says to.
func sweepBucket(ctx context.Context, db *DB, bucket []byte,
	expired func(tx *bolt.Tx, k, v []byte) (bool, error),
	del func(tx *bolt.Tx, k []byte) error,
) (int, error) {
	var removed int
	var next []byte
	for first := true; first || next != nil; first = false {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		var doomed [][]byte
		err := db.write(func(tx *bolt.Tx) error {
			doomed = doomed[:0]
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
			for _, k := range doomed {
				if err := del(tx, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += len(doomed)
	}
	return removed, nil
}

package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// sweepChunk bounds how many records one sweep transaction deals with, and
// sweepBudget how long it goes on, so that a sweep never holds the write
// transaction (which the exchanges of the same group commit wait on) for
// long: a record's deletion costs more as the file grows past the page
// cache (13 µs at 1M live pairs, 35 µs at 10M), so a count alone would let
// a chunk's time grow with the file. Between chunks the sweep rests as
// long as the last one took.
const (
	sweepChunk  = 1000
	sweepBudget = 3 * time.Millisecond
)

// Sweep deletes what can no longer be used or recognised at now. It reads
// only what is due: the entries of the expiry index (bucket expiry/) up to
// now, each naming a code or grant whose deadline came (decide.Sweep says
// what becomes of it). A sweep with nothing due is one read of the index's
// first key, however many records are stored. After a plugin's deletion
// (meta/purge), the next sweep also makes one pass over every record to
// delete that plugin's codes and tokens at once. It works in transactions
// of at most sweepChunk records and stops early, with what it did so far,
// when ctx is done. A record that does not decode is left in place and
// named in the result.
func (db *DB) Sweep(ctx context.Context, now time.Time) (store.SweepResult, error) {
	var res store.SweepResult
	purge, err := db.purgeGeneration(ctx)
	if err != nil {
		return res, err
	}
	if purge != nil {
		if res, err = db.sweepOrphans(ctx); err != nil {
			return res, err
		}
		if err := db.update(ctx, func(tx txn) error {
			meta := tx.Bucket(bucketMeta)
			if bytes.Equal(meta.Get(keyPurge), purge) { // no deletion since
				return meta.Delete(keyPurge)
			}
			return nil
		}); err != nil {
			return res, err
		}
	}
	err = db.sweepDue(ctx, now, &res)
	if err == nil {
		db.cache.evictExpired(now)
	}
	return res, err
}

// sweepDue deals with every expiry entry due at now, a chunk per write
// transaction.
func (db *DB) sweepDue(ctx context.Context, now time.Time, res *store.SweepResult) error {
	until := codec.ExpiryUntil(now)
	var from []byte // past the entries this sweep left in place (undecodable)
	for {
		var due [][]byte
		if err := db.view(ctx, func(tx txn) error {
			// What is due, and the records it names, read before the
			// write transaction that the exchanges wait on: a page the
			// kernel has to read from disk then costs this read, not
			// their latency.
			due = dueEntries(tx, from, until, sweepChunk)
			for _, k := range due {
				if _, kind, key, ok := codec.ParseExpiryKey(k); ok {
					tx.Bucket(recordBucket(kind == codec.ExpiryGrant)).Get(key[:])
				}
			}
			return nil
		}); err != nil || len(due) == 0 {
			return err
		}
		var codes, grants int
		var undecodable []string
		var last []byte
		chunk := time.Now()
		if err := db.write(func(tx txn) error {
			codes, grants, undecodable, last = 0, 0, nil, nil
			idx := tx.Bucket(bucketExpiry)
			start := time.Now()
			// The entries are read again in the write transaction: what a
			// read transaction saw may have changed.
			for _, k := range dueEntries(tx, from, until, sweepChunk) {
				if last != nil && time.Since(start) > db.sweepBudget {
					break
				}
				last = k
				_, kind, key, ok := codec.ParseExpiryKey(k)
				if !ok {
					undecodable = append(undecodable, fmt.Sprintf("%s/%x", bucketExpiry, k))
					continue
				}
				isGrant := kind == codec.ExpiryGrant
				bucket := recordBucket(isGrant)
				b := tx.Bucket(bucket)
				raw := b.Get(key[:])
				if raw == nil { // a revoked family's, or moved
					if err := idx.Delete(k); err != nil {
						return err
					}
					continue
				}
				verdict, next, err := decide.Sweep(isGrant, raw, now, func() (time.Time, error) {
					return familyLatest(tx, key.Family())
				})
				if err != nil {
					return err
				}
				switch verdict {
				case decide.DueUndecodable:
					undecodable = append(undecodable, fmt.Sprintf("%s/%x", bucket, key[:]))
				case decide.DueMove:
					if err := idx.Delete(k); err != nil {
						return err
					}
					if err := idx.Put(codec.ExpiryKey(next, kind, key), nil); err != nil {
						return err
					}
				case decide.DueDelete:
					if err := b.Delete(key[:]); err != nil {
						return err
					}
					if err := idx.Delete(k); err != nil {
						return err
					}
					if isGrant {
						grants++
					} else {
						codes++
					}
				}
			}
			return nil
		}); err != nil {
			return err
		}
		res.Codes += codes
		res.Grants += grants
		res.Undecodable = append(res.Undecodable, undecodable...)
		// Entries left in place sort first next time: go on past the last
		// one dealt with.
		if last == nil {
			last = due[len(due)-1]
		}
		from = append(bytes.Clone(last), 0)
		// Then rest as long as the chunk took, its commit included: the
		// exchanges get the disk and the processor for at least half of
		// a long sweep's time, so that their latency does not follow it.
		rest := time.NewTimer(time.Since(chunk))
		select {
		case <-ctx.Done():
			rest.Stop()
			return ctx.Err()
		case <-rest.C:
		}
	}
}

// eachInChunk calls fn with each of at most n records of bucket from the
// key from (the first when nil), and returns the key the next chunk starts
// at (nil when the bucket is done): the walk of the passes that read a
// whole bucket a transaction at a time.
func eachInChunk(tx txn, bucket, from []byte, n int, fn func(k, v []byte) error) ([]byte, error) {
	c := tx.Bucket(bucket).Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for i := 0; k != nil; k, v = c.Next() {
		if i == n {
			return bytes.Clone(k), nil
		}
		i++
		if err := fn(k, v); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// dueEntries returns up to n expiry keys from from (the start when nil)
// that sort before until.
func dueEntries(tx txn, from, until []byte, n int) [][]byte {
	var out [][]byte
	c := tx.Bucket(bucketExpiry).Cursor()
	k, _ := c.First()
	if from != nil {
		k, _ = c.Seek(from)
	}
	for ; k != nil && bytes.Compare(k, until) < 0 && len(out) < n; k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// familyLatest returns the latest deadline of the grants stored in the
// family (zero when there is none): a family is one contiguous range of
// grants/. A grant that does not decode counts as living forever: the
// code that recognises its replay stays.
func familyLatest(tx txn, fam store.Family) (time.Time, error) {
	var latest time.Time
	c := tx.Bucket(bucketGrants).Cursor()
	for k, v := c.Seek(fam[:]); k != nil && bytes.HasPrefix(k, fam[:]); k, v = c.Next() {
		var g store.Grant
		if codec.DecodeGrant(v, &g) != nil {
			return time.Unix(0, 1<<62), nil
		}
		if d := decide.ExpiresAt(&g); d.After(latest) {
			latest = d
		}
	}
	return latest, nil
}

// index writes the expiry entry of a code (g nil) or grant.
func index(tx txn, c *store.AuthCode, g *store.Grant) error {
	kind, key := codec.ExpiryCode, store.Key{}
	if g != nil {
		kind, key = codec.ExpiryGrant, g.Key
	} else {
		key = c.Key
	}
	b := tx.Bucket(bucketExpiry)
	b.FillPercent = keyOrderedFill // deadlines grow with time: pages fill from the right
	return b.Put(codec.ExpiryKey(decide.Deadline(c, g), kind, key), nil)
}

// purgeGeneration returns meta/purge: set (to a counter) by each plugin
// deletion until a sweep has passed over every record since; nil when no
// pass is owed.
func (db *DB) purgeGeneration(ctx context.Context) ([]byte, error) {
	var gen []byte
	err := db.view(ctx, func(tx txn) error {
		gen = bytes.Clone(tx.Bucket(bucketMeta).Get(keyPurge))
		return nil
	})
	return gen, err
}

// owePurge records, in a plugin's deletion, that the next sweep makes a
// pass over every record.
func owePurge(tx txn) error {
	meta := tx.Bucket(bucketMeta)
	var n uint64
	if v := meta.Get(keyPurge); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return meta.Put(keyPurge, binary.BigEndian.AppendUint64(nil, n+1))
}

// sweepOrphans deletes the codes and grants of deleted plugins, reading
// every record (decide.Orphan).
func (db *DB) sweepOrphans(ctx context.Context) (store.SweepResult, error) {
	plugins := map[string]bool{}
	return decide.Sweeping(func(isGrant bool, undecodable func(string)) (int, error) {
		bucket := recordBucket(isGrant)
		return sweepBucket(ctx, db, bucket, func(tx txn, k, v []byte) (bool, error) {
			gone, bad, err := decide.Orphan(isGrant, v, func(id string) (bool, error) {
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
}

// sweepBucket walks bucket in chunks of sweepChunk keys, each read in a
// read transaction, and deletes the keys that expired says to in a write
// transaction that asks expired again of each (the record may have changed
// in between). A chunk with nothing to delete writes nothing.
func sweepBucket(ctx context.Context, db *DB, bucket []byte,
	expired func(tx txn, k, v []byte) (bool, error),
) (int, error) {
	var removed int
	var next []byte
	for first := true; first || next != nil; first = false {
		var doomed [][]byte
		err := db.view(ctx, func(tx txn) error {
			var err error
			next, err = eachInChunk(tx, bucket, next, sweepChunk, func(k, v []byte) error {
				gone, err := expired(tx, k, v)
				if gone {
					doomed = append(doomed, bytes.Clone(k))
				}
				return err
			})
			return err
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

// recordBucket is the bucket of grants (isGrant) or of codes.
func recordBucket(isGrant bool) []byte {
	if isGrant {
		return bucketGrants
	}
	return bucketCodes
}

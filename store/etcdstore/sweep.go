package etcdstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// The sweep's batches: entries read per transaction (each reads its record
// and, for a code, its family: at most 2 operations), and entries written
// per transaction (at most 2 operations and 2 guards each). etcd takes at
// most 128 operations per transaction by default.
const (
	sweepReadBatch  = 40
	sweepWriteBatch = 30
)

// indexOp is the put of the expiry entry of a code (g nil) or grant, which
// goes in the transaction that writes the record.
func (db *DB) indexOp(c *store.AuthCode, g *store.Grant) clientv3.Op {
	kind, key := codec.ExpiryCode, store.Key{}
	if g != nil {
		kind, key = codec.ExpiryGrant, g.Key
	} else {
		key = c.Key
	}
	return clientv3.OpPut(db.entryKey(decide.Deadline(c, g), kind, key), "")
}

func (db *DB) entryKey(deadline time.Time, kind byte, key store.Key) string {
	return db.expiryPrefix() + hex.EncodeToString(codec.ExpiryKey(deadline, kind, key))
}

// Sweep deletes what can no longer be used or recognised at now, reading
// only what is due: the expiry entries up to now, each naming a code or
// grant whose deadline came (decide.Sweep says what becomes of it), read
// and written a batch per transaction, each deletion guarded by the
// revision it was judged at (a record that changed meanwhile is left for
// the next sweep). A sweep with nothing due is one read. After a plugin's
// deletion (meta/purge), it also makes one pass over every record to delete
// that plugin's codes and tokens at once.
func (db *DB) Sweep(ctx context.Context, now time.Time) (store.SweepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*db.timeout)
	defer cancel()
	var res store.SweepResult
	purge, err := db.c.Get(ctx, db.purgeKey())
	if err != nil {
		return res, unavailable(err)
	}
	if len(purge.Kvs) > 0 {
		if res, err = db.sweepOrphans(ctx); err != nil {
			return res, err
		}
		// Cleared only if no deletion came since.
		if _, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(db.purgeKey()), "=", purge.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(db.purgeKey())).Commit(); err != nil {
			return res, unavailable(err)
		}
	}
	return res, db.sweepDue(ctx, now, &res)
}

// dueEntry is an expiry entry that came due, with what was read for it.
type dueEntry struct {
	entry   string
	kind    byte
	key     store.Key
	record  string
	rec     read
	family  []read // a code's family's grants
	readRev int64  // the revision the reads were made at
}

// sweepPage is how many expiry entries one range read of the sweep takes.
const sweepPage = 1000

// sweepDue deals with every expiry entry due at now.
//
// etcd counts every key of a range it is asked for, however few it
// returns: reading [first due, now) a page at a time would count what
// remains at every page, a cost that grows with the square of what is due.
// So the sweep reads a window of deadlines at a time, which it narrows when
// a window holds more than a page and widens when it holds less: each read
// counts about a page.
func (db *DB) sweepDue(ctx context.Context, now time.Time, res *store.SweepResult) error {
	prefix := db.expiryPrefix()
	until := prefix + hex.EncodeToString(codec.ExpiryUntil(now))
	first, err := db.c.Get(ctx, prefix, clientv3.WithRange(until), clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return unavailable(err)
	}
	if len(first.Kvs) == 0 {
		return nil
	}
	from := string(first.Kvs[0].Key)
	window := time.Minute
	for from < until {
		end := until
		if d, ok := entryDeadline(from, prefix); ok {
			if e := prefix + hex.EncodeToString(codec.ExpiryUntil(d.Add(window))); e < end {
				end = e
			}
		}
		page, err := db.c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(sweepPage), clientv3.WithKeysOnly())
		if err != nil {
			return unavailable(err)
		}
		for kvs := page.Kvs; len(kvs) > 0; {
			n := min(len(kvs), sweepReadBatch)
			if err := db.sweepEntries(ctx, now, kvs[:n], res); err != nil {
				return err
			}
			kvs = kvs[n:]
		}
		if page.More {
			window = max(window/2, time.Millisecond)
			from = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
		} else {
			window *= 2
			from = end
		}
	}
	return nil
}

// entryDeadline reads the deadline at the start of an expiry key (or of
// a range bound made from one).
func entryDeadline(key, prefix string) (time.Time, bool) {
	h := strings.TrimPrefix(key, prefix)
	if len(h) < 16 {
		return time.Time{}, false
	}
	raw, err := hex.DecodeString(h[:16])
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw))), true
}

// sweepEntries deals with a batch of due entries: reads their records in
// one transaction and writes the verdicts in guarded transactions.
func (db *DB) sweepEntries(ctx context.Context, now time.Time, entries []*mvccpb.KeyValue, res *store.SweepResult) error {
	due, err := db.readDue(ctx, entries)
	if err != nil {
		return err
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	var codes, grants int
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		ok, err := db.commit(ctx, cmps, ops...)
		if err != nil {
			return err
		}
		if ok {
			res.Codes += codes
			res.Grants += grants
		}
		cmps, ops, codes, grants = nil, nil, 0, 0
		return nil
	}
	for i := range due {
		d := &due[i]
		if d.rec.raw == nil { // a revoked family's, or a malformed entry
			ops = append(ops, clientv3.OpDelete(d.entry))
		} else {
			isGrant := d.kind == codec.ExpiryGrant
			verdict, next, err := decide.Sweep(isGrant, d.rec.raw, now, func() (time.Time, error) { return familyLatest(d.family), nil })
			if err != nil {
				return err
			}
			switch verdict {
			case decide.DueUndecodable:
				res.Undecodable = append(res.Undecodable, strings.TrimPrefix(d.record, db.prefix))
				continue
			case decide.DueMove:
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(d.record), "=", d.rec.rev))
				ops = append(ops, clientv3.OpDelete(d.entry), clientv3.OpPut(db.entryKey(next, d.kind, d.key), ""))
			case decide.DueDelete:
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(d.record), "=", d.rec.rev))
				if !isGrant {
					// No grant joined the family since it was read.
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(db.familyKey(d.key.Family())), "<", d.readRev+1).
						WithPrefix())
					codes++
				} else {
					grants++
				}
				ops = append(ops, clientv3.OpDelete(d.record), clientv3.OpDelete(d.entry))
			}
		}
		if len(ops) >= 2*sweepWriteBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// readDue reads, in one transaction, the record each entry names and, for
// a code, the grants of its family.
func (db *DB) readDue(ctx context.Context, entries []*mvccpb.KeyValue) ([]dueEntry, error) {
	due := make([]dueEntry, 0, len(entries))
	var ops []clientv3.Op
	for _, kv := range entries {
		d := dueEntry{entry: string(kv.Key)}
		raw, err := hex.DecodeString(strings.TrimPrefix(d.entry, db.expiryPrefix()))
		if err == nil {
			var ok bool
			_, d.kind, d.key, ok = codec.ParseExpiryKey(raw)
			if !ok {
				err = fmt.Errorf("malformed")
			}
		}
		if err != nil {
			due = append(due, d) // no record: the entry is dropped
			continue
		}
		if d.kind == codec.ExpiryGrant {
			d.record = db.grantKey(d.key)
		} else {
			d.record = db.codeKey(d.key)
		}
		ops = append(ops, clientv3.OpGet(d.record))
		if d.kind == codec.ExpiryCode {
			ops = append(ops, clientv3.OpGet(db.familyKey(d.key.Family()), clientv3.WithPrefix()))
		}
		due = append(due, d)
	}
	if len(ops) == 0 {
		return due, nil
	}
	resp, err := db.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	i := 0
	for j := range due {
		d := &due[j]
		if d.record == "" {
			continue
		}
		d.readRev = resp.Header.Revision
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			d.rec = read{raw: kvs[0].Value, rev: kvs[0].ModRevision}
		}
		i++
		if d.kind == codec.ExpiryCode {
			for _, kv := range resp.Responses[i].GetResponseRange().Kvs {
				d.family = append(d.family, read{raw: kv.Value, rev: kv.ModRevision})
			}
			i++
		}
	}
	return due, nil
}

// familyLatest is the latest deadline of a family's grants (zero when
// there is none). A grant that does not decode counts as living forever.
func familyLatest(family []read) time.Time {
	var latest time.Time
	for _, r := range family {
		var g store.Grant
		if codec.DecodeGrant(r.raw, &g) != nil {
			return time.Unix(0, 1<<62)
		}
		if d := decide.ExpiresAt(&g); d.After(latest) {
			latest = d
		}
	}
	return latest
}

// sweepOrphans deletes the codes and grants of deleted plugins, reading
// every record (decide.Orphan), a page at a time.
func (db *DB) sweepOrphans(ctx context.Context) (store.SweepResult, error) {
	plugins := map[string]bool{}
	pluginExists := func(id string) (bool, error) {
		if ok, seen := plugins[id]; seen {
			return ok, nil
		}
		resp, err := db.c.Get(ctx, db.pluginKey(id), clientv3.WithCountOnly())
		if err != nil {
			return false, unavailable(err)
		}
		plugins[id] = resp.Count > 0
		return plugins[id], nil
	}
	return decide.Sweeping(func(isGrant bool, undecodable func(string)) (int, error) {
		prefix := db.prefix + "codes/"
		if isGrant {
			prefix = db.prefix + "grants/"
		}
		return db.sweepPrefix(ctx, prefix, func(key string, raw []byte) (bool, error) {
			gone, bad, err := decide.Orphan(isGrant, raw, pluginExists)
			if bad {
				undecodable(strings.TrimPrefix(key, db.prefix))
			}
			return gone, err
		})
	})
}

// sweepPrefix walks the keys under prefix in pages and deletes those expired
// says are, each deletion guarded by the revision it was judged at.
func (db *DB) sweepPrefix(ctx context.Context, prefix string, expired func(key string, raw []byte) (bool, error)) (int, error) {
	const page = 500
	removed := 0
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := db.c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(page))
		if err != nil {
			return removed, unavailable(err)
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, kv := range resp.Kvs {
			gone, err := expired(string(kv.Key), kv.Value)
			if err != nil {
				return removed, err
			}
			if gone {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
				if len(ops) == 64 {
					n, err := db.deleteGuarded(ctx, cmps, ops)
					removed += n
					if err != nil {
						return removed, err
					}
					cmps, ops = nil, nil
				}
			}
		}
		n, err := db.deleteGuarded(ctx, cmps, ops)
		removed += n
		if err != nil {
			return removed, err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return removed, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// deleteGuarded deletes keys whose revisions still match; when one changed
// meanwhile (a write raced the sweep), the batch is left for the next sweep.
func (db *DB) deleteGuarded(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (int, error) {
	if len(ops) == 0 {
		return 0, nil
	}
	ok, err := db.commit(ctx, cmps, ops...)
	if err != nil || !ok {
		return 0, err
	}
	return len(ops), nil
}

// migrate brings a prefix of version to the current version. From
// version 3 it writes the expiry entry of every code and grant, a batch per
// transaction; from 3 or 4 it then writes the new version (if the version
// is still the old one: another replica may have migrated at once; entries are the
// same whoever writes them). Records are never rewritten: format 1 records
// decode as they are. A replica stopped midway leaves the old version,
// which the next one to start migrates again. Replicas of version 3, while
// they still run, write records with no entry, and replicas of version 4
// cannot read format 2: stop older replicas before starting this version
// (docs/etcd.md).
func (db *DB) migrate(version string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 100*db.timeout)
	defer cancel()
	kinds := []byte{codec.ExpiryCode, codec.ExpiryGrant}
	if version != codec.UnindexedSchemaVersion {
		kinds = nil
	}
	for _, kind := range kinds {
		prefix := db.prefix + "codes/"
		if kind == codec.ExpiryGrant {
			prefix = db.prefix + "grants/"
		}
		from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
		for {
			resp, err := db.c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(64))
			if err != nil {
				return unavailable(err)
			}
			var ops []clientv3.Op
			for _, kv := range resp.Kvs {
				raw, err := hex.DecodeString(strings.TrimPrefix(string(kv.Key), prefix))
				var key store.Key
				if err != nil || len(raw) != len(key) {
					continue
				}
				copy(key[:], raw)
				if kind == codec.ExpiryCode {
					c := store.AuthCode{Key: key}
					if codec.DecodeAuthCode(kv.Value, &c) == nil {
						ops = append(ops, db.indexOp(&c, nil))
					}
				} else {
					g := store.Grant{Key: key}
					if codec.DecodeGrant(kv.Value, &g) == nil {
						ops = append(ops, db.indexOp(nil, &g))
					}
				}
			}
			if len(ops) > 0 {
				if _, err := db.c.Txn(ctx).Then(ops...).Commit(); err != nil {
					return unavailable(err)
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	key := db.prefix + "meta/schema"
	if _, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", version)).
		Then(clientv3.OpPut(key, codec.SchemaVersion)).Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

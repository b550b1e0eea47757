package etcdstore

// Auth codes: creation and redemption.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// CreateAuthCode stores a new code for an existing plugin. It returns
// store.ErrNotFound when the plugin does not exist, store.ErrExists when the
// key is taken.
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	pk, ck := db.pluginKey(c.PluginID), db.codeKey(c.Key)
	resp, err := db.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(pk), ">", 0), clientv3.Compare(clientv3.CreateRevision(ck), "=", 0)).
		Then(clientv3.OpPut(ck, marshal(&c)), db.indexOp(&c, nil)).
		Else(clientv3.OpGet(pk, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return store.ErrNotFound
		}
		return store.ErrExists
	}
	return nil
}

// RedeemAuthCode keeps the contract of store.Store's RedeemAuthCode: the code
// is checked and consumed, and the grant stored, in one etcd transaction
// guarded by the revisions of the plugin and the code, so of any number of
// concurrent redemptions through any number of replicas exactly one
// succeeds. A replay revokes the code's family in one transaction too.
//
// An unknown key is read again with its family's tombstone and first
// grant (decide.Redemption), all in one snapshot: a consumed code is
// recognised by the hash its grants carry.
func (db *DB) RedeemAuthCode(ctx context.Context, r store.Redemption) error {
	if err := r.Check(); err != nil {
		return err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	fam := r.Code.Key.Family()
	keys := []string{db.pluginKey(r.PluginID), db.codeKey(r.Code.Key), db.codeKey(decide.TombstoneKey(fam))}
	var outcome error
	err := db.retry(ctx, func() (bool, error) {
		reads, p, err := db.readWithPlugin(ctx, keys[:2]...)
		if err != nil {
			return false, err
		}
		c, err := decodeCode(reads[1], r.Code.Key)
		if err != nil {
			return false, err
		}
		var first *store.Grant
		cmps := unchanged(keys[:2], reads)
		if c == nil {
			var firstRead read
			var firstKey store.Key
			if reads, firstRead, firstKey, err = db.readFamily(ctx, keys, fam); err != nil {
				return false, err
			}
			if p, err = decodePlugin(reads[0]); err != nil {
				return false, err
			}
			if c, err = decodeCode(reads[1], r.Code.Key); err != nil {
				return false, err
			}
			if c == nil {
				if c, err = decodeCode(reads[2], decide.TombstoneKey(fam)); err != nil {
					return false, err
				}
			}
			if first, err = decodeGrant(firstRead, firstKey); err != nil {
				return false, err
			}
			cmps = unchanged(keys, reads)
			if first != nil { // what recognised the code, unchanged too
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(db.grantKey(firstKey)), "=", firstRead.rev))
			}
		}
		plan := decide.Redemption(r, p, c, first)
		outcome = plan.Outcome
		return db.apply(ctx, plan, cmps)
	})
	if err != nil {
		return err
	}
	return outcome
}

// readFamily reads keys and the first grant of the family fam in one
// snapshot, and returns the grant's read and key (a zero read when the
// family has none).
func (db *DB) readFamily(ctx context.Context, keys []string, fam store.Family) ([]read, read, store.Key, error) {
	ops := make([]clientv3.Op, 0, len(keys)+1)
	for _, k := range keys {
		ops = append(ops, clientv3.OpGet(k))
	}
	ops = append(ops, clientv3.OpGet(db.familyKey(fam), clientv3.WithPrefix(), clientv3.WithLimit(1)))
	resps, err := db.reads.do(ctx, ops...)
	if err != nil {
		return nil, read{}, store.Key{}, unavailable(err)
	}
	out := readsOf(resps)
	var key store.Key
	if kvs := resps[len(keys)].GetResponseRange().Kvs; len(kvs) > 0 {
		raw, err := hex.DecodeString(strings.TrimPrefix(string(kvs[0].Key), db.prefix+"grants/"))
		if err != nil || len(raw) != len(key) {
			return nil, read{}, store.Key{}, fmt.Errorf("etcdstore: grant key %q: %w", kvs[0].Key, errBadKey)
		}
		copy(key[:], raw)
	}
	return out[:len(keys)], out[len(keys)], key, nil
}

// errBadKey is a key under grants/ that is not a grant's.
var errBadKey = errors.New("not a grant key")

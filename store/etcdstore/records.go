package etcdstore

// The stored records: their keys' reads and the shared codec.

import (
	"context"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

func marshal[R *store.Plugin | *store.AuthCode | *store.Grant](v R) string {
	switch v := any(v).(type) {
	case *store.Plugin:
		return string(codec.EncodePlugin(v))
	case *store.AuthCode:
		return string(codec.EncodeAuthCode(v))
	case *store.Grant:
		return string(codec.EncodeGrant(v))
	}
	panic("unreachable")
}

// read is a record read in a transaction, with the revision the write must
// compare against (0: absent).
type read struct {
	raw []byte
	rev int64
}

// readAll reads keys in one transaction, so they are one consistent
// snapshot (batched with other callers' reads: see reads).
func (db *DB) readAll(ctx context.Context, keys ...string) ([]read, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	resps, err := db.reads.do(ctx, ops...)
	if err != nil {
		return nil, unavailable(err)
	}
	return readsOf(resps), nil
}

// readsOf is the first record each response of a read holds (a zero read
// when it holds none).
func readsOf(resps []*etcdserverpb.ResponseOp) []read {
	out := make([]read, len(resps))
	for i, r := range resps {
		if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
			out[i] = read{raw: kvs[0].Value, rev: kvs[0].ModRevision}
		}
	}
	return out
}

// unchanged guards a write on records not having changed since they were
// read (absent ones still absent).
func unchanged(keys []string, reads []read) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(keys))
	for i, k := range keys {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(k), "=", reads[i].rev)
	}
	return cmps
}

// readWithPlugin reads keys in one snapshot, the first being a plugin's,
// and decodes that plugin (nil when absent).
func (db *DB) readWithPlugin(ctx context.Context, keys ...string) ([]read, *store.Plugin, error) {
	reads, err := db.readAll(ctx, keys...)
	if err != nil {
		return nil, nil, err
	}
	p, err := decodePlugin(reads[0])
	return reads, p, err
}

func decodePlugin(r read) (*store.Plugin, error) {
	return decodeRead(r, store.Plugin{}, codec.DecodePlugin)
}

func decodeCode(r read, key store.Key) (*store.AuthCode, error) {
	return decodeRead(r, store.AuthCode{Key: key}, codec.DecodeAuthCode)
}

func decodeGrant(r read, key store.Key) (*store.Grant, error) {
	return decodeRead(r, store.Grant{Key: key}, codec.DecodeGrant)
}

// decodeRead decodes what r read into v, or returns nil for a key that
// was absent: the decisions of package decide take nil for "absent".
func decodeRead[T any](r read, v T, decode func([]byte, *T) error) (*T, error) {
	if r.raw == nil {
		return nil, nil
	}
	if err := decode(r.raw, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

package boltstore

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

// record is a stored type.
type record interface {
	*store.Plugin | *store.AuthCode | *store.Grant
}

// get decodes the record at key in bucket into v. It reports false when
// there is no such key. The bytes are decoded before the transaction ends,
// so nothing in v points into bbolt's memory map.
func get[R record](tx txn, bucket, key []byte, v R) (bool, error) {
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	return true, decode(bucket, key, raw, v)
}

// decode decodes raw, stored at key in bucket, into v.
func decode[R record](bucket, key, raw []byte, v R) error {
	var err error
	switch v := any(v).(type) {
	case *store.Plugin:
		err = codec.DecodePlugin(raw, v)
	case *store.AuthCode:
		err = codec.DecodeAuthCode(raw, v)
	case *store.Grant:
		err = codec.DecodeGrant(raw, v)
	}
	if err != nil {
		return fmt.Errorf("store: decode %s/%x: %w", bucket, key, err)
	}
	return nil
}

// put stores v at key in bucket. Unless the transaction chose otherwise
// (putGrant's middleFill), the pages it splits are packed to
// keyOrderedFill.
func put[R record](tx txn, bucket, key []byte, v R) error {
	var raw []byte
	switch v := any(v).(type) {
	case *store.Plugin:
		raw = codec.EncodePlugin(v)
	case *store.AuthCode:
		raw = codec.EncodeAuthCode(v)
	case *store.Grant:
		raw = codec.EncodeGrant(v)
	}
	b := tx.Bucket(bucket)
	if b.FillPercent == bolt.DefaultFillPercent { // the transaction's first write to b
		b.FillPercent = keyOrderedFill
	}
	return b.Put(key, raw)
}

// keyOrderedFill is how full bbolt packs a page it splits, in a write
// transaction that only appends to a bucket whose keys are written in
// nearly increasing order: codes and grants, whose keys sort by their
// code's issue time to the 16 ns (NewKey), and the expiry index, by
// deadline. New keys land on the rightmost page, and every page left behind
// stays as full as this: 0.95 packs 23 grants in a 4 KiB page and leaves
// room for one written late (a code exchanged after codes issued after it)
// before the page splits. bbolt's default, 0.5, would leave every page
// half empty.
const keyOrderedFill = 0.95

// middleFill is how full bbolt packs a page it splits in a transaction
// that also writes a key well behind the bucket's last one (writesBehind):
// a rotated grant joins its family's grants, among pages long since full.
// Split at keyOrderedFill, such a page would become a full one and one
// holding the new key alone, and a store whose clients refresh their tokens
// would end with pages a quarter to a third used; split near halves, the
// pages that take such keys stay about three quarters full. (bbolt's
// default, 0.5, would be taken for a transaction that chose nothing.)
const middleFill = 0.55

// writesBehind reports whether key sorts more than a second of issue time
// (store.Key.IssueMilli) before last, a key-ordered bucket's last key: it
// lands on a page the appends left behind.
func writesBehind(key store.Key, last []byte) bool {
	return len(last) == len(key) && key.IssueMilli()+1000 < store.Key(last).IssueMilli()
}

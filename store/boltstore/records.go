package boltstore

import (
	"fmt"

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

// put stores v at key in bucket.
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
	// Keys of codes and tokens grow with time (NewKey), so pages fill from
	// the right: packing them full halves the pages to write and to map.
	b.FillPercent = 0.9
	return b.Put(key, raw)
}

package codec

import (
	"encoding/binary"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// The expiry index: every stored code and grant has an entry keyed by the
// time it may be swept, so that a sweep reads only what is due, never the
// records that are not. An entry is the deadline (nanoseconds since 1970,
// big-endian, so that entries sort by time), a kind byte and the record's
// key. A backend writes the entry in the transaction that writes the
// record, and removes it when the sweep has dealt with the record. An entry
// whose record is gone (a revoked family) or has a later deadline is stale,
// and is dropped when it comes due.

// ExpiryKeyLen is the length of an expiry index key.
const ExpiryKeyLen = 8 + 1 + len(store.Key{})

// The kinds of record an expiry entry names.
const (
	ExpiryCode  byte = 'c'
	ExpiryGrant byte = 'g'
)

// ExpiryKey returns the index key of the record of kind (ExpiryCode,
// ExpiryGrant) with key, due at deadline.
func ExpiryKey(deadline time.Time, kind byte, key store.Key) []byte {
	b := make([]byte, 0, ExpiryKeyLen)
	b = binary.BigEndian.AppendUint64(b, uint64(max(0, deadline.UnixNano())))
	b = append(b, kind)
	return append(b, key[:]...)
}

// ExpiryUntil returns the smallest index key past every entry due at now:
// the end of a sweep's range.
func ExpiryUntil(now time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(max(0, now.UnixNano()))+1)
}

// ParseExpiryKey splits an index key; ok is false for a key of another
// shape.
func ParseExpiryKey(b []byte) (deadline time.Time, kind byte, key store.Key, ok bool) {
	if len(b) != ExpiryKeyLen || (b[8] != ExpiryCode && b[8] != ExpiryGrant) {
		return time.Time{}, 0, key, false
	}
	copy(key[:], b[9:])
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), b[8], key, true
}

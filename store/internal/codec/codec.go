// Package codec is the stored form of the store's records, the same in
// every backend: a backend stores, and reads back, exactly these bytes.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// Records are stored in a compact binary form: a format byte, then fixed
// fields, then length-prefixed strings. It is several times cheaper to
// encode and decode than JSON, and smaller on disk, which matters because
// every exchange writes three records and reads two.
//
// Codes and grants are written in format 2 (schema 5), which keeps what a
// live pair costs on disk small (docs/benchmarks.md, "make scale"):
//   - a secret's hash is stored as its first StoredSecretLen bytes (128
//     bits: guessing a token that matches is as hard as guessing the
//     token's own 256-bit secret to that many bits, and the hash of a
//     stored record tells nothing more about the secret);
//   - the first time (IssuedAt) is stored whole, the others as the signed
//     difference to it, in milliseconds when whole (a lifetime is), in
//     nanoseconds otherwise, with a 2-bit tag each (absent, ms, ns);
//   - a scope of Teable's vocabulary is one byte (scopeTable).
// Grants are written in format 3 (schema 6): format 2 with a byte of
// flags, the hash of the grant's code (store.Grant.CodeSecret) when it
// carries it, and Teable's ids packed in 15 bytes instead of 20 (ids.go).
// Format 1 records (schemas 3 and 4) still decode: a file is not rewritten
// to change format, its records are replaced as they are written again or
// expire. Plugins stay in format 1: there are few of them.

// SchemaVersion is the layout version a backend records (bbolt's
// meta/schema, etcd's <prefix>schema). Open refuses another version rather
// than misread it, except the ones before, which it migrates in place:
// version 4 added the expiry index (expiry.go) to version 3's records,
// version 5 writes codes and grants in format 2 and reads both formats,
// version 6 consumes a code at its redemption (its grants carry its hash,
// format 3) where version 5 kept it as a tombstone.
const SchemaVersion = "6"

// UnindexedSchemaVersion is the version without the expiry index: Open
// writes every record's entry, then SchemaVersion.
const UnindexedSchemaVersion = "3"

// Decodable reports whether the records of a file or prefix of schema
// version v decode and keep their meaning as they are (versions 4 and 5:
// their redeemed codes are tombstones, which this version still reads), so
// that Open only writes SchemaVersion, which older builds then refuse
// rather than misread the records this one writes.
func Decodable(v string) bool { return v == "4" || v == "5" }

// StoredSecretLen is how many leading bytes of a secret's hash a format 2
// record keeps, and what decide.Matches compares for every record.
const StoredSecretLen = 16

const (
	formatV1 = 1
	formatV2 = 2
	// formatV3 is a grant of format 2 with a byte of flags after the
	// format byte: it may carry its code's secret hash
	// (store.Grant.CodeSecret, schema 6) before its own two, and its ids
	// may be packed (ids.go).
	formatV3 = 3
)

var errCorrupt = errors.New("store: corrupt record")

// encoder appends fields to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)    { e.b = append(e.b, v) }
func (e *encoder) bytes(v []byte) { e.b = append(e.b, v...) }
func (e *encoder) time(t time.Time) {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	e.b = binary.BigEndian.AppendUint64(e.b, uint64(n))
}
func (e *encoder) string(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) strings(ss []string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

// decoder reads fields back; after the first short read every field is zero
// and err is set.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *decoder) byte() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}
func (d *decoder) fixed(dst []byte) { copy(dst, d.take(len(dst))) }
func (d *decoder) time() time.Time {
	v := d.take(8)
	if v == nil {
		return time.Time{}
	}
	n := int64(binary.BigEndian.Uint64(v))
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
func (d *decoder) len() int {
	if d.err != nil {
		return 0
	}
	n, w := binary.Uvarint(d.b)
	if w <= 0 || n > uint64(len(d.b)-w) {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[w:]
	return int(n)
}
func (d *decoder) string() string { return string(d.take(d.len())) }

// optionalString reads a string field that records written before it
// existed (schema 3 files, first pass) do not have: at the end of such a
// record it is "".
func (d *decoder) optionalString() string {
	if d.err != nil || len(d.b) == 0 {
		return ""
	}
	return d.string()
}
func (d *decoder) strings() []string { return d.list(d.string) }

// list reads a count, then that many items.
func (d *decoder) list(item func() string) []string {
	n := d.len()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = item()
	}
	if d.err != nil {
		return nil
	}
	return out
}

// newDecoder reads the format byte: formatV1, or (when newer is true)
// formatV2, or formatV3 for a grant.
func newDecoder(raw []byte, newer bool, grant bool) (*decoder, byte) {
	d := &decoder{b: raw}
	v := d.byte()
	known := v == formatV1 || newer && v == formatV2 || grant && v == formatV3
	if d.err == nil && !known {
		d.err = fmt.Errorf("store: unknown record format %d", v)
	}
	return d, v
}

// Time tags of format 2: how a time after the first is stored.
const (
	tagZero  = 0 // the zero time: nothing stored
	tagMilli = 1 // a varint: the difference to the base in milliseconds
	tagNano  = 2 // a varint: the difference to the base in nanoseconds
)

// unixNano is t in nanoseconds since 1970, 0 for the zero time (as format
// 1 stores it).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// relative appends t as a difference to base (unixNano) and returns its
// tag. Both lie in [1970, 2262] (core.MaxLifetime), so the difference
// fits an int64.
func (e *encoder) relative(t time.Time, base int64) byte {
	if t.IsZero() {
		return tagZero
	}
	d := t.UnixNano() - base
	if d%int64(time.Millisecond) == 0 {
		e.b = binary.AppendVarint(e.b, d/int64(time.Millisecond))
		return tagMilli
	}
	e.b = binary.AppendVarint(e.b, d)
	return tagNano
}

// relative reads a time relative stored with tag.
func (d *decoder) relative(tag byte, base int64) time.Time {
	if tag == tagZero || d.err != nil {
		return time.Time{}
	}
	v, w := binary.Varint(d.b)
	if w <= 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	d.b = d.b[w:]
	switch tag {
	case tagMilli:
		v *= int64(time.Millisecond)
	case tagNano:
	default:
		d.err = errCorrupt
		return time.Time{}
	}
	return time.Unix(0, base+v).UTC()
}

// times appends first whole, then a byte of tags (two bits a time, the
// first time's in the lowest) and the others (at most four) as
// differences to first.
func (e *encoder) times(first time.Time, rest ...time.Time) {
	e.time(first)
	at := len(e.b)
	e.byte(0)
	base := unixNano(first)
	var tags byte
	for i, t := range rest {
		tags |= e.relative(t, base) << (2 * i)
	}
	e.b[at] = tags
}

// times reads what encoder.times wrote.
func (d *decoder) times(first *time.Time, rest ...*time.Time) {
	*first = d.time()
	tags, base := d.byte(), unixNano(*first)
	for i, t := range rest {
		*t = d.relative(tags>>(2*i)&3, base)
	}
}

// secret appends a hash as format 2 stores it.
func (e *encoder) secret(h store.Hash) { e.b = append(e.b, h[:StoredSecretLen]...) }

// scopes appends scopes as format 2 stores them.
func (e *encoder) scopes(ss []string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(ss)))
	for _, s := range ss {
		n := scopeNumber[s]
		e.b = binary.AppendUvarint(e.b, n)
		if n == 0 {
			e.string(s)
		}
	}
}

func (d *decoder) scopes() []string { return d.list(d.scope) }

// scope reads one scope of format 2: its number in scopeTable, or 0 and
// its text.
func (d *decoder) scope() string {
	if d.err != nil {
		return ""
	}
	num, w := binary.Uvarint(d.b)
	if w <= 0 || num > uint64(len(scopeTable)) {
		d.err = errCorrupt
		return ""
	}
	d.b = d.b[w:]
	if num == 0 {
		return d.string()
	}
	return scopeTable[num-1]
}

// EncodePlugin returns the stored form of p.
func EncodePlugin(p *store.Plugin) []byte {
	e := encoder{b: make([]byte, 0, 128)}
	e.byte(formatV1)
	e.bytes(p.SecretHash[:])
	e.time(p.CreatedAt)
	e.time(p.UpdatedAt)
	e.string(p.ID)
	e.string(p.Name)
	e.string(p.SecretHint)
	e.strings(p.Scopes)
	return e.b
}

// DecodePlugin decodes the stored form of a plugin into p. A code's or
// grant's Key is not part of its stored form.
func DecodePlugin(raw []byte, p *store.Plugin) error {
	d, _ := newDecoder(raw, false, false)
	d.fixed(p.SecretHash[:])
	p.CreatedAt, p.UpdatedAt = d.time(), d.time()
	p.ID, p.Name, p.SecretHint = d.string(), d.string(), d.string()
	p.Scopes = d.strings()
	return d.err
}

// EncodeAuthCode returns the stored form of c (format 2).
func EncodeAuthCode(c *store.AuthCode) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.byte(formatV2)
	e.secret(c.Secret)
	e.times(c.IssuedAt, c.ExpiresAt, c.RedeemedAt)
	e.string(c.PluginID)
	e.string(c.BaseID)
	e.string(c.Subject)
	return e.b
}

// EncodeAuthCodeV1 is the format 1 form of c, as schemas 3 and 4 wrote
// it: for the tests that make the files of older versions.
func EncodeAuthCodeV1(c *store.AuthCode) []byte {
	e := encoder{b: make([]byte, 0, 96)}
	e.byte(formatV1)
	e.bytes(c.Secret[:])
	e.time(c.IssuedAt)
	e.time(c.ExpiresAt)
	e.time(c.RedeemedAt)
	e.string(c.PluginID)
	e.string(c.BaseID)
	e.string(c.Subject)
	return e.b
}

// DecodeAuthCode decodes the stored form of a code (format 1 or 2) into c.
// A code's or grant's Key is not part of its stored form.
func DecodeAuthCode(raw []byte, c *store.AuthCode) error {
	d, format := newDecoder(raw, true, false)
	if format == formatV2 {
		c.Secret = store.Hash{}
		d.fixed(c.Secret[:StoredSecretLen])
		d.times(&c.IssuedAt, &c.ExpiresAt, &c.RedeemedAt)
		c.PluginID, c.BaseID, c.Subject = d.string(), d.string(), d.string()
		return d.err
	}
	d.fixed(c.Secret[:])
	c.IssuedAt, c.ExpiresAt, c.RedeemedAt = d.time(), d.time(), d.time()
	c.PluginID, c.BaseID = d.string(), d.string()
	c.Subject = d.optionalString()
	return d.err
}

// EncodeGrant returns the stored form of g: format 3.
func EncodeGrant(g *store.Grant) []byte {
	e := encoder{b: make([]byte, 0, 112)}
	e.byte(formatV3)
	var flags byte
	carried := g.CodeSecret != (store.Hash{})
	for i, on := range []bool{carried, packable(g.PluginID), packable(g.BaseID), packable(g.Subject)} {
		if on {
			flags |= 1 << i
		}
	}
	e.byte(flags)
	if carried {
		e.secret(g.CodeSecret)
	}
	e.secret(g.AccessSecret)
	e.secret(g.RefreshSecret)
	e.times(g.IssuedAt, g.AccessExpiresAt, g.RefreshExpiresAt, g.RotatedAt, g.AccessRevokedAt)
	e.id(g.PluginID, flags&flagPlugin != 0)
	e.id(g.BaseID, flags&flagBase != 0)
	e.scopes(g.Scopes)
	e.id(g.Subject, flags&flagSubject != 0)
	return e.b
}

// The flags of a format 3 grant: what it carries, and which of its ids are
// packed (ids.go).
const (
	flagCodeSecret = 1 << iota
	flagPlugin
	flagBase
	flagSubject
	flagsKnown = flagCodeSecret | flagPlugin | flagBase | flagSubject
)

// EncodeGrantV1 is the format 1 form of g, as schemas 3 and 4 wrote it:
// for the tests that make the files of older versions.
func EncodeGrantV1(g *store.Grant) []byte {
	e := encoder{b: make([]byte, 0, 176)}
	e.byte(formatV1)
	e.bytes(g.AccessSecret[:])
	e.bytes(g.RefreshSecret[:])
	e.time(g.IssuedAt)
	e.time(g.AccessExpiresAt)
	e.time(g.RefreshExpiresAt)
	e.time(g.RotatedAt)
	e.time(g.AccessRevokedAt)
	e.string(g.PluginID)
	e.string(g.BaseID)
	e.strings(g.Scopes)
	e.string(g.Subject)
	return e.b
}

// DecodeGrant decodes the stored form of a grant (format 1, 2 or 3) into
// g. A code's or grant's Key is not part of its stored form.
func DecodeGrant(raw []byte, g *store.Grant) error {
	d, format := newDecoder(raw, true, true)
	g.CodeSecret = store.Hash{}
	var flags byte
	if format == formatV3 {
		if flags = d.byte(); flags&^flagsKnown != 0 && d.err == nil {
			d.err = errCorrupt
		}
		if flags&flagCodeSecret != 0 {
			d.fixed(g.CodeSecret[:StoredSecretLen])
		}
		format = formatV2
	}
	if format == formatV2 {
		g.AccessSecret, g.RefreshSecret = store.Hash{}, store.Hash{}
		d.fixed(g.AccessSecret[:StoredSecretLen])
		d.fixed(g.RefreshSecret[:StoredSecretLen])
		d.times(&g.IssuedAt, &g.AccessExpiresAt, &g.RefreshExpiresAt, &g.RotatedAt, &g.AccessRevokedAt)
		g.PluginID, g.BaseID = d.id(flags&flagPlugin != 0), d.id(flags&flagBase != 0)
		g.Scopes = d.scopes()
		g.Subject = d.id(flags&flagSubject != 0)
		return d.err
	}
	d.fixed(g.AccessSecret[:])
	d.fixed(g.RefreshSecret[:])
	g.IssuedAt, g.AccessExpiresAt, g.RefreshExpiresAt = d.time(), d.time(), d.time()
	g.RotatedAt, g.AccessRevokedAt = d.time(), d.time()
	g.PluginID, g.BaseID = d.string(), d.string()
	g.Scopes = d.strings()
	g.Subject = d.optionalString()
	return d.err
}

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

// SchemaVersion is the layout version a backend records (bbolt's
// meta/schema, etcd's <prefix>schema). Open refuses another version rather
// than misread it, except the one before (PreviousSchemaVersion), which it
// migrates in place. Version 4 added the expiry index (expiry.go); the
// records are those of version 3.
const SchemaVersion = "4"

// PreviousSchemaVersion is the version Open migrates from (SchemaVersion).
const PreviousSchemaVersion = "3"

const formatV1 = 1

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
func (d *decoder) strings() []string {
	n := d.len()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

func newDecoder(raw []byte) *decoder {
	d := &decoder{b: raw}
	if v := d.byte(); d.err == nil && v != formatV1 {
		d.err = fmt.Errorf("store: unknown record format %d", v)
	}
	return d
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
	d := newDecoder(raw)
	d.fixed(p.SecretHash[:])
	p.CreatedAt, p.UpdatedAt = d.time(), d.time()
	p.ID, p.Name, p.SecretHint = d.string(), d.string(), d.string()
	p.Scopes = d.strings()
	return d.err
}

// EncodeAuthCode returns the stored form of c.
func EncodeAuthCode(c *store.AuthCode) []byte {
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

// DecodeAuthCode decodes the stored form of a authcode into c. A code's or
// grant's Key is not part of its stored form.
func DecodeAuthCode(raw []byte, c *store.AuthCode) error {
	d := newDecoder(raw)
	d.fixed(c.Secret[:])
	c.IssuedAt, c.ExpiresAt, c.RedeemedAt = d.time(), d.time(), d.time()
	c.PluginID, c.BaseID = d.string(), d.string()
	c.Subject = d.optionalString()
	return d.err
}

// EncodeGrant returns the stored form of g.
func EncodeGrant(g *store.Grant) []byte {
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

// DecodeGrant decodes the stored form of a grant into g. A code's or
// grant's Key is not part of its stored form.
func DecodeGrant(raw []byte, g *store.Grant) error {
	d := newDecoder(raw)
	d.fixed(g.AccessSecret[:])
	d.fixed(g.RefreshSecret[:])
	g.IssuedAt, g.AccessExpiresAt, g.RefreshExpiresAt = d.time(), d.time(), d.time()
	g.RotatedAt, g.AccessRevokedAt = d.time(), d.time()
	g.PluginID, g.BaseID = d.string(), d.string()
	g.Scopes = d.strings()
	g.Subject = d.optionalString()
	return d.err
}

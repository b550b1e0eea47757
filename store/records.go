package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Hash is the SHA-256 of a secret, or of the secret part of a code or
// token. It is the only form in which the store ever receives one.
type Hash [sha256.Size]byte

// HashOf returns the SHA-256 of s.
func HashOf(s string) Hash { return sha256.Sum256([]byte(s)) }

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Key is the public half of a code or token: the key it is stored under.
// It tells nothing about the secret half, which is stored only as a Hash.
type Key [16]byte

// NewKey returns a random key that sorts by issue time: 6 bytes of Unix
// milliseconds, then 80 random bits. Keys issued close together land on
// the same few B+tree pages, so a group commit of many new tokens writes a
// handful of pages instead of one per token.
func NewKey(now time.Time) Key {
	var k Key
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(k[:6], ms[2:])
	_, _ = rand.Read(k[6:]) // crypto/rand.Read never fails (Go 1.24+).
	return k
}

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Ref names a presented code or token: the key it is stored under and the
// hash of its secret half. A record matches a Ref only when both agree.
type Ref struct {
	Key    Key
	Secret Hash
}

// matches compares the stored secret hash with the presented one in
// constant time.
func (r Ref) matches(stored Hash) bool {
	return subtle.ConstantTimeCompare(r.Secret[:], stored[:]) == 1
}

// Plugin is a registered plugin.
type Plugin struct {
	ID   string
	Name string
	// SecretHash is the SHA-256 of the plugin secret.
	SecretHash Hash
	// SecretHint is the short tail of the secret shown, masked, when the
	// plugin is read back, so an operator can tell two secrets apart.
	SecretHint string
	// Scopes are the scopes the plugin may ever be granted.
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuthCode is a single-use authorization code.
type AuthCode struct {
	Key Key
	// Secret is the hash of the code's secret half.
	Secret    Hash
	PluginID  string
	BaseID    string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// RedeemedAt is zero until the code has been exchanged for tokens.
	RedeemedAt time.Time
}

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// The kinds of token.
const (
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
)

// Token is an issued access or refresh token.
type Token struct {
	Key Key
	// Secret is the hash of the token's secret half.
	Secret    Hash
	Kind      TokenKind
	PluginID  string
	BaseID    string
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Code is the key of the auth code the token descends from: the token
	// family that is revoked together when the code is replayed or a
	// rotated refresh token is reused.
	Code Key
	// Pair is the key of the token issued together with this one (the
	// refresh token of an access token and the other way round).
	Pair Key
	// RotatedAt is zero until a refresh token is exchanged for a new pair;
	// a rotated token is kept only to recognise its reuse.
	RotatedAt time.Time
}

// Active reports whether the token may be used at now: not expired and, for
// a refresh token, not rotated.
func (t Token) Active(now time.Time) bool {
	return now.Before(t.ExpiresAt) && t.RotatedAt.IsZero()
}

// record is a stored type.
type record interface {
	marshal() []byte
	unmarshal([]byte) error
}

// get decodes the record at key in bucket into v. It reports false when
// there is no such key. The bytes are decoded before the transaction ends,
// so nothing in v points into bbolt's memory map.
func get(tx *bolt.Tx, bucket, key []byte, v record) (bool, error) {
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	return true, decode(bucket, key, raw, v)
}

// decode decodes raw, stored at key in bucket, into v.
func decode(bucket, key, raw []byte, v record) error {
	if err := v.unmarshal(raw); err != nil {
		return fmt.Errorf("store: decode %s/%x: %w", bucket, key, err)
	}
	return nil
}

// put stores v at key in bucket.
func put(tx *bolt.Tx, bucket, key []byte, v record) error {
	b := tx.Bucket(bucket)
	// Keys of codes and tokens grow with time (NewKey), so pages fill from
	// the right: packing them full halves the pages to write and to map.
	b.FillPercent = 0.9
	return b.Put(key, v.marshal())
}

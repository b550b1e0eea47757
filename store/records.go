package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
	"unsafe"
)

// Hash is the SHA-256 of a secret, or of the secret part of a code or
// token. It is the only form in which the store ever receives one.
type Hash [sha256.Size]byte

// HashOf returns the SHA-256 of s. It reads s in place: a conversion to
// []byte would copy a secret longer than 32 bytes to the heap on every call.
func HashOf(s string) Hash { return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s))) }

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Key is the public half of a code or token: the key it is stored under.
// It tells nothing about the secret half, which is stored only as a Hash.
type Key [24]byte

// Family is the first 16 bytes of a key: a code's family is its own, and
// every token descended from the code (through any number of rotations)
// carries it, so that a family is one contiguous range of keys.
type Family [16]byte

// NewKey returns a random code key that sorts by issue time: 6 bytes of
// Unix milliseconds and 2 of the millisecond's fraction (in steps of 16
// nanoseconds), then 128 random bits; its family (the first 16 bytes)
// keeps 64 of them. Keys issued close together land on the same few B+tree
// pages, so a group commit of many writes touches a handful of pages
// instead of one per write; and keys issued one after the other sort in
// that order, so the grants their exchanges write are appended to full
// pages instead of split into pages they leave half empty.
func NewKey(now time.Time) Key {
	var k Key
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(k[:6], ms[2:])
	binary.BigEndian.PutUint16(k[6:8], uint16(now.Nanosecond()%int(time.Millisecond)/16))
	_, _ = rand.Read(k[8:]) // crypto/rand.Read never fails (Go 1.24+).
	return k
}

// IssueMilli is the Unix millisecond a key sorts by: its code's issue time
// (NewKey), shared by every grant of its family.
func (k Key) IssueMilli() int64 {
	var ms [8]byte
	copy(ms[2:], k[:6])
	return int64(binary.BigEndian.Uint64(ms[:]))
}

// NewGrantKey returns a key for a token pair descended from the code or
// token with key parent: the parent's family and 64 random bits.
func NewGrantKey(parent Key) Key {
	var k Key
	copy(k[:len(Family{})], parent[:])
	_, _ = rand.Read(k[len(Family{}):])
	return k
}

// Family returns the family a key belongs to.
func (k Key) Family() Family { return Family(k[:len(Family{})]) }

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Ref names a presented code or token: the key it is stored under and the
// hash of its secret half. A record matches a Ref only when both agree.
// Kind, when set, is the kind of token the presented string says it is (its
// prefix): it then matches only that kind's secret, so that a refresh
// token's secret spelled as an access token (or the reverse) is unknown
// everywhere. One credential has exactly one spelling.
type Ref struct {
	Key    Key
	Secret Hash
	Kind   TokenKind
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
	// Subject is who the code was issued for (a gateway's signed-in user),
	// or empty. The tokens issued from the code carry it.
	Subject string
}

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// The kinds of token.
const (
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
)

// Grant is the stored form of a token pair: the access and the refresh
// token issued together share one key (and one record) and differ by their
// secret halves. A rotation ends a grant and starts a new one in the same
// family.
type Grant struct {
	Key Key
	// AccessSecret and RefreshSecret are the hashes of the two tokens'
	// secret halves.
	AccessSecret, RefreshSecret Hash
	PluginID                    string
	BaseID                      string
	Scopes                      []string
	IssuedAt                    time.Time
	AccessExpiresAt             time.Time
	RefreshExpiresAt            time.Time
	// RotatedAt is zero until the refresh token is exchanged for a new
	// grant; from then on both tokens are dead and the record is kept only
	// to recognise the refresh token's reuse.
	RotatedAt time.Time
	// AccessRevokedAt is set when the access token alone is revoked.
	AccessRevokedAt time.Time
	// Subject is the subject of the code the grant descends from. The
	// store copies it from the code (on redemption) or the presented grant
	// (on rotation): callers need not set it.
	Subject string
	// CodeSecret is the secret hash of the code the grant descends from.
	// A redemption consumes its code (the code's record goes) and every
	// grant of the family carries the code's hash instead, so that a
	// replay of the code is recognised, and revokes the family, for as
	// long as any of its grants is stored. The store copies it from the
	// code or the presented grant, as Subject; it is zero in grants
	// written before schema 6, whose codes stay as tombstones.
	CodeSecret Hash
}

// Token is one token of a grant, as a lookup sees it.
type Token struct {
	Key       Key
	Kind      TokenKind
	PluginID  string
	BaseID    string
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// EndedAt is when the token stopped working before its expiry
	// (rotated or revoked); zero while it works.
	EndedAt time.Time
	// Subject is the subject of the code the token descends from.
	Subject string
}

// Active reports whether the token may be used at now.
func (t Token) Active(now time.Time) bool {
	return now.Before(t.ExpiresAt) && t.EndedAt.IsZero()
}

package core

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
	"unsafe"

	"github.com/plugintoken/plugintoken/store"
)

// Prefixes make each kind of credential recognisable at a glance (and to
// secret scanners), and let a token of the wrong kind be refused before any
// lookup.
const (
	PrefixAccessToken  = "pta_"
	PrefixRefreshToken = "ptr_"
	PrefixAuthCode     = "ptc_"
	PrefixPluginID     = "plu"
)

const (
	lowerAlnum = "0123456789abcdefghijklmnopqrstuvwxyz"
	alnum      = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

	// secretLen is Teable's format: 40 characters of [0-9a-z], 206 bits.
	secretLen = 40
	// secretHintLen is how much of a secret's tail is kept to show masked.
	// Teable keeps 10; four tell secrets apart while leaving 186 bits unknown.
	secretHintLen = 4
	// pluginIDLen is Teable's format after the "plu" prefix.
	pluginIDLen = 16
	// tokenBytes is the randomness of a token's or code's secret part:
	// 256 bits.
	tokenBytes = 32
)

// credentialLen is the length of the base64url part of a code or token:
// a 16-byte store key and a 32-byte secret.
var credentialLen = base64.RawURLEncoding.EncodedLen(len(store.Key{}) + tokenBytes)

// newCredential mints an auth code: prefix, then base64url of its store
// key and 256 random bits. The store keeps the key and only the SHA-256 of
// the random part.
func newCredential(prefix string, now time.Time) (string, store.Ref) {
	ref := store.Ref{Key: store.NewKey(now)}
	s, secret := credential(prefix, ref.Key)
	ref.Secret = secret
	return s, ref
}

// newTokenPair mints an access and a refresh token that share the grant
// key, in the family of parent (the code, or the refresh token being
// rotated), and the grant record that stores them.
func newTokenPair(parent store.Key, now time.Time, accessTTL, refreshTTL time.Duration) (access, refresh string, g store.Grant) {
	g.Key = store.NewGrantKey(parent)
	access, g.AccessSecret = credential(PrefixAccessToken, g.Key)
	refresh, g.RefreshSecret = credential(PrefixRefreshToken, g.Key)
	g.IssuedAt, g.AccessExpiresAt, g.RefreshExpiresAt = now, now.Add(accessTTL), now.Add(refreshTTL)
	return access, refresh, g
}

// credential returns prefix + base64url(key ‖ 256 random bits), and the
// SHA-256 of the random bits.
func credential(prefix string, key store.Key) (string, store.Hash) {
	var raw [len(store.Key{}) + tokenBytes]byte
	copy(raw[:], key[:])
	_, _ = rand.Read(raw[len(key):]) // crypto/rand.Read never fails (Go 1.24+).
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:]), sha256.Sum256(raw[len(key):])
}

var strictBase64 = base64.RawURLEncoding.Strict()

// parseCredential reads a code or token minted by newCredential with the
// given prefix. It reports false for anything else.
func parseCredential(s, prefix string) (store.Ref, bool) {
	var ref store.Ref
	if len(s) != len(prefix)+credentialLen || s[:len(prefix)] != prefix {
		return ref, false
	}
	var raw [len(store.Key{}) + tokenBytes]byte
	// Strict: the last character's unused bits must be zero, so that each
	// credential has exactly one spelling.
	if n, err := strictBase64.Decode(raw[:], unsafeBytes(s[len(prefix):])); err != nil || n != len(raw) {
		return ref, false
	}
	copy(ref.Key[:], raw[:])
	ref.Secret = sha256.Sum256(raw[len(ref.Key):])
	switch prefix {
	case PrefixAccessToken:
		ref.Kind = store.KindAccess
	case PrefixRefreshToken:
		ref.Kind = store.KindRefresh
	}
	return ref, true
}

// unsafeBytes views s as bytes without copying, for read-only use.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// randomString returns n characters drawn uniformly from alphabet.
func randomString(alphabet string, n int) string {
	var sb strings.Builder
	sb.Grow(n)
	// Rejection sampling keeps the draw uniform: bytes at or above the
	// largest multiple of len(alphabet) are discarded.
	limit := byte(256 - 256%len(alphabet))
	buf := make([]byte, n*2)
	for sb.Len() < n {
		_, _ = rand.Read(buf)
		for _, b := range buf {
			if b < limit && sb.Len() < n {
				sb.WriteByte(alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return sb.String()
}

func newPluginID() string { return PrefixPluginID + randomString(alnum, pluginIDLen) }
func newSecret() string   { return randomString(lowerAlnum, secretLen) }

// secretHint is the tail of a secret kept for masked display.
func secretHint(secret string) string { return secret[len(secret)-secretHintLen:] }

// maskSecret shows a secret the way GET /plugin/{id} does: as long as a
// secret, all asterisks but the stored hint.
func maskSecret(hint string) string {
	return strings.Repeat("*", secretLen-len(hint)) + hint
}

// checkSecret returns a store Authorize check of a presented plugin secret.
// The secret is hashed once, here: the store may call the check several
// times (a read-only pre-check, the write transaction, a retried batch).
// The hashes are compared in constant time, so the answer's timing does not
// depend on how much of the secret was right.
func checkSecret(presented string) func(store.Plugin) error {
	h := store.HashOf(presented)
	return func(p store.Plugin) error {
		if subtle.ConstantTimeCompare(p.SecretHash[:], h[:]) != 1 {
			return errInvalidSecret
		}
		return nil
	}
}

// ParseCredential returns the store reference (key and secret hash) of an
// auth code, access token or refresh token of this service's format, and
// false for any other string. It checks the format only, not the store.
func ParseCredential(s string) (store.Ref, bool) {
	for _, prefix := range []string{PrefixAccessToken, PrefixRefreshToken, PrefixAuthCode} {
		if ref, ok := parseCredential(s, prefix); ok {
			return ref, true
		}
	}
	return store.Ref{}, false
}

package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strings"

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
	// tokenBytes is the randomness of a token or code: 256 bits.
	tokenBytes = 32
)

// randomToken returns prefix followed by 256 random bits in unpadded
// base64url.
func randomToken(prefix string) string {
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

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

// secretMatches hashes the presented secret and compares it with the stored
// hash in constant time, so the answer's timing does not depend on how much
// of the secret was right.
func secretMatches(stored store.Hash, presented string) bool {
	h := store.HashOf(presented)
	return subtle.ConstantTimeCompare(stored[:], h[:]) == 1
}

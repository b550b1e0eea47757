package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Plugin is a registered plugin.
type Plugin struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// SecretHash is the SHA-256 of the plugin secret.
	SecretHash Hash `json:"secretHash"`
	// SecretHint is the short tail of the secret shown, masked, when the
	// plugin is read back, so an operator can tell two secrets apart.
	SecretHint string `json:"secretHint"`
	// Scopes are the scopes the plugin may ever be granted.
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// AuthCode is a single-use authorization code, stored under its hash.
type AuthCode struct {
	Hash      Hash      `json:"-"`
	PluginID  string    `json:"pluginId"`
	BaseID    string    `json:"baseId"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// RedeemedAt is zero until the code has been exchanged for tokens.
	RedeemedAt time.Time `json:"redeemedAt,omitzero"`
}

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// The kinds of token.
const (
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
)

// Token is an issued access or refresh token, stored under its hash.
type Token struct {
	Hash      Hash      `json:"-"`
	Kind      TokenKind `json:"kind"`
	PluginID  string    `json:"pluginId"`
	BaseID    string    `json:"baseId"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Code is the hash of the auth code the token descends from: the token
	// family that is revoked together when the code is replayed.
	Code Hash `json:"code"`
	// Pair is the hash of the token issued together with this one (the
	// refresh token of an access token and the other way round).
	Pair Hash `json:"pair"`
	// RotatedAt is zero until a refresh token is exchanged for a new pair;
	// a rotated token is kept only to recognise its reuse.
	RotatedAt time.Time `json:"rotatedAt,omitzero"`
}

// Active reports whether the token may be used at now: not expired and, for
// a refresh token, not rotated.
func (t Token) Active(now time.Time) bool {
	return now.Before(t.ExpiresAt) && t.RotatedAt.IsZero()
}

// get decodes the JSON record at key in bucket into v. It reports false when
// there is no such key. The bytes are decoded before the transaction ends,
// so nothing in v points into bbolt's memory map.
func get(tx *bolt.Tx, bucket, key []byte, v any) (bool, error) {
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	return true, decode(bucket, key, raw, v)
}

// decode decodes the JSON record raw, stored at key in bucket, into v.
func decode(bucket, key, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("store: decode %s/%x: %w", bucket, key, err)
	}
	return nil
}

// put encodes v as JSON at key in bucket.
func put(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s record: %w", bucket, err)
	}
	return tx.Bucket(bucket).Put(key, raw)
}

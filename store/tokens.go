package store

import (
	"bytes"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// familyKey is the families/ key of a token descended from code.
func familyKey(code, token Hash) []byte {
	k := make([]byte, 0, 2*len(code))
	k = append(k, code[:]...)
	return append(k, token[:]...)
}

// putToken stores t under its hash and lists it in its family, refusing to
// overwrite a token.
func putToken(tx *bolt.Tx, t Token) error {
	if tx.Bucket(bucketTokens).Get(t.Hash[:]) != nil {
		return ErrExists
	}
	if err := put(tx, bucketTokens, t.Hash[:], t); err != nil {
		return err
	}
	return tx.Bucket(bucketFamily).Put(familyKey(t.Code, t.Hash), nil)
}

// deleteToken removes a token and its family entry.
func deleteToken(tx *bolt.Tx, t Token) error {
	if err := tx.Bucket(bucketTokens).Delete(t.Hash[:]); err != nil {
		return err
	}
	return tx.Bucket(bucketFamily).Delete(familyKey(t.Code, t.Hash))
}

// revokeFamily deletes every token descended from code.
func revokeFamily(tx *bolt.Tx, code Hash) error {
	fam := tx.Bucket(bucketFamily)
	var keys [][]byte
	c := fam.Cursor()
	for k, _ := c.Seek(code[:]); k != nil && bytes.HasPrefix(k, code[:]); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	tokens := tx.Bucket(bucketTokens)
	for _, k := range keys {
		if err := tokens.Delete(k[len(code):]); err != nil {
			return err
		}
		if err := fam.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// token reads a token inside tx. It returns ErrNotFound when there is no
// such token or its plugin has been deleted.
func token(tx *bolt.Tx, hash Hash) (Token, error) {
	var t Token
	ok, err := get(tx, bucketTokens, hash[:], &t)
	if err != nil {
		return t, err
	}
	if !ok || tx.Bucket(bucketPlugins).Get([]byte(t.PluginID)) == nil {
		return t, ErrNotFound
	}
	t.Hash = hash
	return t, nil
}

// Token returns the token stored under hash. It returns ErrNotFound when
// there is no such token or its plugin has been deleted. It does not judge
// expiry or rotation: the caller asks Token.Active with its clock.
func (db *DB) Token(ctx context.Context, hash Hash) (Token, error) {
	var t Token
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		t, err = token(tx, hash)
		return err
	})
	return t, err
}

// Rotation asks RotateRefreshToken to exchange a refresh token for a new pair.
type Rotation struct {
	PluginID string
	// Refresh is the hash of the presented refresh token.
	Refresh Hash
	Now     time.Time
	// Grace is how long after its rotation a refresh token may be presented
	// again and still be answered with a new pair instead of revoking its
	// family (for clients that retry after losing a response). Zero means
	// any reuse revokes.
	Grace time.Duration
	// Authorize is called inside the write transaction with the plugin as
	// stored, before the token is looked at; when it returns an error,
	// RotateRefreshToken returns it and nothing is written.
	Authorize func(Plugin) error
	// NewAccess and NewRefresh carry the new pair's Hash, IssuedAt and
	// ExpiresAt. Everything else (plugin, base, scopes, family, pairing) is
	// copied from the presented token: a refresh never changes scopes.
	NewAccess, NewRefresh Token
}

// RotateRefreshToken checks the presented refresh token and, in one write
// transaction, marks it rotated, deletes the access token issued with it and
// stores the new pair, which it returns.
//
// It returns ErrNotFound when the plugin does not exist; the error of
// Authorize when that refuses; ErrInvalidToken when the token is unknown,
// expired, not a refresh token or another plugin's; in those cases nothing
// is written. It returns ErrTokenReused when the token was already rotated
// more than Grace ago: then its whole family has been revoked.
func (db *DB) RotateRefreshToken(ctx context.Context, r Rotation) (access, refresh Token, err error) {
	if r.Authorize == nil {
		return access, refresh, errors.New("store: Rotation.Authorize is required")
	}
	var reused bool
	err = db.update(ctx, func(tx *bolt.Tx) error {
		reused = false
		p, err := plugin(tx, r.PluginID)
		if err != nil {
			return err
		}
		if err := r.Authorize(p); err != nil {
			return err
		}
		old, err := token(tx, r.Refresh)
		switch {
		case errors.Is(err, ErrNotFound):
			return ErrInvalidToken
		case err != nil:
			return err
		case old.Kind != KindRefresh, old.PluginID != r.PluginID, !r.Now.Before(old.ExpiresAt):
			return ErrInvalidToken
		case !old.RotatedAt.IsZero() && r.Now.Sub(old.RotatedAt) >= r.Grace:
			// RFC 9700 §4.14.2: a rotated token came back; one of its two
			// holders is not the client. Revoke everything it led to.
			reused = true
			return revokeFamily(tx, old.Code)
		}
		if old.RotatedAt.IsZero() {
			old.RotatedAt = r.Now
			if err := put(tx, bucketTokens, old.Hash[:], old); err != nil {
				return err
			}
			// The access token issued with the old refresh token dies now.
			if pair, err := token(tx, old.Pair); err == nil && pair.Kind == KindAccess {
				if err := deleteToken(tx, pair); err != nil {
					return err
				}
			}
		}
		access, refresh = r.NewAccess, r.NewRefresh
		for _, t := range []*Token{&access, &refresh} {
			t.PluginID, t.BaseID, t.Scopes, t.Code = old.PluginID, old.BaseID, old.Scopes, old.Code
			t.RotatedAt = time.Time{}
		}
		access.Kind, refresh.Kind = KindAccess, KindRefresh
		access.Pair, refresh.Pair = refresh.Hash, access.Hash
		if err := putToken(tx, access); err != nil {
			return err
		}
		return putToken(tx, refresh)
	})
	if err == nil && reused {
		return Token{}, Token{}, ErrTokenReused
	}
	return access, refresh, err
}

// Revocation asks RevokeToken to revoke one token.
type Revocation struct {
	Token Hash
	// PluginID, when set, restricts the revocation to that plugin's tokens
	// (a token of another plugin is left alone, silently), and Authorize is
	// called with that plugin inside the transaction. When empty (an
	// admin's revocation), any token is revoked.
	PluginID  string
	Authorize func(Plugin) error
}

// RevokeToken deletes a token; a refresh token takes its paired access token
// with it, an access token leaves its refresh token alone. An unknown token
// is not an error (RFC 7009). It returns ErrNotFound when r.PluginID names no
// plugin, and the error of Authorize when that refuses; then nothing changes.
func (db *DB) RevokeToken(ctx context.Context, r Revocation) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		if r.PluginID != "" {
			p, err := plugin(tx, r.PluginID)
			if err != nil {
				return err
			}
			if r.Authorize != nil {
				if err := r.Authorize(p); err != nil {
					return err
				}
			}
		}
		t, err := token(tx, r.Token)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		case r.PluginID != "" && t.PluginID != r.PluginID:
			return nil
		}
		if err := deleteToken(tx, t); err != nil {
			return err
		}
		if t.Kind == KindRefresh && t.RotatedAt.IsZero() {
			if pair, err := token(tx, t.Pair); err == nil && pair.Kind == KindAccess {
				return deleteToken(tx, pair)
			}
		}
		return nil
	})
}

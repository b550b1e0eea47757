package store

import (
	"bytes"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// familyKey is the families/ key of a token descended from code.
func familyKey(code, token Key) []byte {
	k := make([]byte, 0, len(code)+len(token))
	k = append(k, code[:]...)
	return append(k, token[:]...)
}

// putToken stores t under its key and lists it in its family. Keys carry
// 80 random bits per millisecond (NewKey), so it does not look for a token
// already there: that would cost two B+tree descents per exchange, inside
// the group commit, for an event that does not happen.
func putToken(tx *bolt.Tx, t Token) error {
	if err := put(tx, bucketTokens, t.Key[:], &t); err != nil {
		return err
	}
	fam := tx.Bucket(bucketFamily)
	fam.FillPercent = 0.9
	return fam.Put(familyKey(t.Code, t.Key), nil)
}

// deleteToken removes a token and its family entry.
func deleteToken(tx *bolt.Tx, t Token) error {
	if err := tx.Bucket(bucketTokens).Delete(t.Key[:]); err != nil {
		return err
	}
	return tx.Bucket(bucketFamily).Delete(familyKey(t.Code, t.Key))
}

// revokeFamily deletes every token descended from code.
func revokeFamily(tx *bolt.Tx, code Key) error {
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

// tokenByKey reads a token inside tx without checking a secret. It returns
// ErrNotFound when there is no such token or its plugin has been deleted.
func tokenByKey(tx *bolt.Tx, key Key) (Token, error) {
	var t Token
	ok, err := get(tx, bucketTokens, key[:], &t)
	if err != nil {
		return t, err
	}
	if !ok || tx.Bucket(bucketPlugins).Get([]byte(t.PluginID)) == nil {
		return t, ErrNotFound
	}
	t.Key = key
	return t, nil
}

// token reads the token a presented Ref names. It returns ErrNotFound when
// there is no such token, its secret half does not match, or its plugin has
// been deleted.
func token(tx *bolt.Tx, ref Ref) (Token, error) {
	t, err := tokenByKey(tx, ref.Key)
	if err == nil && !ref.matches(t.Secret) {
		return Token{}, ErrNotFound
	}
	return t, err
}

// Token returns the token a presented Ref names. It returns ErrNotFound when
// there is no such token, its secret half does not match, or its plugin has
// been deleted. It does not judge expiry or rotation: the caller asks
// Token.Active with its clock.
//
// The token is shared with other callers (it may come from the cache): read
// it, never modify it. Sharing it is what lets a repeated lookup allocate
// nothing.
func (db *DB) Token(ctx context.Context, ref Ref) (*Token, error) {
	if t, ok := db.cache.get(ref); ok {
		return t, nil
	}
	epoch := db.cache.epoch.Load()
	var t Token
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		t, err = token(tx, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	db.cache.fill(&t, epoch)
	return &t, nil
}

// Rotation asks RotateRefreshToken to exchange a refresh token for a new pair.
type Rotation struct {
	PluginID string
	// Refresh is the presented refresh token.
	Refresh Ref
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
	// NewAccess and NewRefresh carry the new pair's Key, Secret, IssuedAt
	// and ExpiresAt. Everything else (plugin, base, scopes, family, pairing) is
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
	var stale []Key // tokens this rotation changes, to drop from the cache
	err = db.batch(ctx, func(tx *bolt.Tx) (error, error) {
		stale = stale[:0]
		p, err := db.plugins.inWrite(tx, r.PluginID)
		if err != nil {
			return err, nil
		}
		if err := r.Authorize(p); err != nil {
			return err, nil
		}
		old, err := token(tx, r.Refresh)
		switch {
		case errors.Is(err, ErrNotFound):
			return ErrInvalidToken, nil
		case err != nil:
			return nil, err
		case old.Kind != KindRefresh, old.PluginID != r.PluginID, !r.Now.Before(old.ExpiresAt):
			return ErrInvalidToken, nil
		case !old.RotatedAt.IsZero() && r.Now.Sub(old.RotatedAt) >= r.Grace:
			// RFC 9700 §4.14.2: a rotated token came back; one of its two
			// holders is not the client. Revoke everything it led to.
			return ErrTokenReused, revokeFamily(tx, old.Code)
		}
		if old.RotatedAt.IsZero() {
			stale = append(stale, old.Key, old.Pair)
			old.RotatedAt = r.Now
			if err := put(tx, bucketTokens, old.Key[:], &old); err != nil {
				return nil, err
			}
			// The access token issued with the old refresh token dies now.
			if pair, err := tokenByKey(tx, old.Pair); err == nil && pair.Kind == KindAccess {
				if err := deleteToken(tx, pair); err != nil {
					return nil, err
				}
			}
		}
		access, refresh = r.NewAccess, r.NewRefresh
		for _, t := range []*Token{&access, &refresh} {
			t.PluginID, t.BaseID, t.Scopes, t.Code = old.PluginID, old.BaseID, old.Scopes, old.Code
			t.RotatedAt = time.Time{}
		}
		access.Kind, refresh.Kind = KindAccess, KindRefresh
		access.Pair, refresh.Pair = refresh.Key, access.Key
		if err := putToken(tx, access); err != nil {
			return nil, err
		}
		return nil, putToken(tx, refresh)
	})
	switch {
	case errors.Is(err, ErrTokenReused):
		db.cache.invalidate()
	case err == nil && len(stale) > 0:
		db.cache.invalidate(stale...)
	}
	if err != nil {
		return Token{}, Token{}, err
	}
	return access, refresh, nil
}

// Revocation asks RevokeToken to revoke one token.
type Revocation struct {
	Token Ref
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
	var stale []Key
	err := db.batch(ctx, func(tx *bolt.Tx) (error, error) {
		stale = stale[:0]
		if r.PluginID != "" {
			p, err := db.plugins.inWrite(tx, r.PluginID)
			if err != nil {
				return err, nil
			}
			if r.Authorize != nil {
				if err := r.Authorize(p); err != nil {
					return err, nil
				}
			}
		}
		t, err := token(tx, r.Token)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		case r.PluginID != "" && t.PluginID != r.PluginID:
			return nil, nil
		}
		stale = append(stale, t.Key)
		if err := deleteToken(tx, t); err != nil {
			return nil, err
		}
		if t.Kind == KindRefresh && t.RotatedAt.IsZero() {
			if pair, err := tokenByKey(tx, t.Pair); err == nil && pair.Kind == KindAccess {
				stale = append(stale, pair.Key)
				return nil, deleteToken(tx, pair)
			}
		}
		return nil, nil
	})
	if err == nil && len(stale) > 0 {
		db.cache.invalidate(stale...)
	}
	return err
}

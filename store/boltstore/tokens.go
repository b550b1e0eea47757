package boltstore

import (
	"bytes"
	"context"
	"errors"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// putGrant stores g under its key, with its expiry entry. Keys carry 64
// random bits within their family (NewGrantKey), so it does not look for a
// grant already there. It does read the bucket's last key (the right edge,
// whose pages every exchange touches): a grant written well behind it (a
// rotation's, among its family's old pages) makes the transaction split
// pages at middleFill instead of keyOrderedFill.
func putGrant(tx txn, g *store.Grant) error {
	if b := tx.Bucket(bucketGrants); b.FillPercent != middleFill {
		if last, _ := b.Cursor().Last(); writesBehind(g.Key, last) {
			b.FillPercent = middleFill
		}
	}
	if err := put(tx, bucketGrants, g.Key[:], g); err != nil {
		return err
	}
	// Its expiry entry: the same key for every write of the grant (its
	// deadline never changes), so writing it again changes nothing.
	return index(tx, nil, g)
}

// revokeFamily deletes every grant of the family (all the tokens descended
// from one auth code) inside the write transaction tx, and drops the cached
// tokens before the commit makes the revocation visible.
func (db *DB) revokeFamily(tx txn, fam store.Family) error {
	db.cache.drop()
	b := tx.Bucket(bucketGrants)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(fam[:]); k != nil && bytes.HasPrefix(k, fam[:]); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// grant reads the grant stored under key. It returns ErrNotFound when there
// is none or its plugin has been deleted.
func grant(tx txn, key store.Key) (*store.Grant, error) {
	g := &store.Grant{Key: key}
	ok, err := get(tx, bucketGrants, key[:], g)
	if err != nil {
		return nil, err
	}
	if !ok || tx.Bucket(bucketPlugins).Get([]byte(g.PluginID)) == nil {
		return nil, store.ErrNotFound
	}
	return g, nil
}

// Token returns the token a presented Ref names. It returns ErrNotFound when
// there is no such token, its secret half does not match, or its plugin has
// been deleted. It does not judge expiry, rotation or revocation: the caller
// asks Token.Active with its clock.
//
// The token is shared with other callers (it may come from the cache): read
// it, never modify it. Sharing it is what lets a repeated lookup allocate
// nothing.
func (db *DB) Token(ctx context.Context, ref store.Ref) (*store.Token, error) {
	e, kind, hit, unknown := db.cache.get(ref)
	switch {
	case hit:
		return e.token(kind), nil
	case unknown:
		return nil, store.ErrNotFound
	}
	epoch := db.cache.epoch.Load()
	var g *store.Grant
	var stored bool
	err := db.view(ctx, func(tx txn) error {
		var err error
		g, err = grant(tx, ref.Key)
		if errors.Is(err, store.ErrNotFound) { // no grant, or a deleted plugin's
			stored = tx.Bucket(bucketGrants).Get(ref.Key[:]) != nil
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) && !stored {
		db.cache.noteAbsent(ref.Key)
	}
	if err != nil {
		return nil, err
	}
	// The grant is cached whether or not the secret presented is its own:
	// presenting wrong secrets for a known key then costs what presenting
	// the right one does, a map lookup, not a read transaction each.
	e = db.cache.fill(g, epoch)
	kind, ok := decide.Presents(g, ref)
	if !ok {
		return nil, store.ErrNotFound
	}
	return e.token(kind), nil
}

// RotateRefreshToken checks the presented refresh token and, in one write
// transaction, ends its grant (both of its tokens stop working) and stores
// the new grant, which it returns.
//
// It returns ErrNotFound when the plugin does not exist; the error of
// Authorize when that refuses; ErrInvalidToken when the token is unknown,
// expired, not a refresh token or another plugin's; in those cases nothing
// is written. It returns ErrTokenReused when the token was already rotated
// more than Grace ago: then its whole family has been revoked.
func (db *DB) RotateRefreshToken(ctx context.Context, r store.Rotation) (store.Grant, error) {
	if err := r.Check(); err != nil {
		return store.Grant{}, err
	}
	plan, err := db.checkAndWrite(ctx, func(tx txn, lookup pluginLookup) (decide.Plan, error) {
		return planRotation(tx, r, lookup)
	})
	if err != nil {
		return store.Grant{}, err
	}
	return plan.Result, nil
}

// planRotation reads what a rotation needs inside tx and plans it
// (decide.Rotation).
func planRotation(tx txn, r store.Rotation, lookup pluginLookup) (decide.Plan, error) {
	pp, err := optional(lookup(tx, r.PluginID))
	if err != nil {
		return decide.Plan{}, err
	}
	g, err := grant(tx, r.Refresh.Key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return decide.Plan{}, err
	}
	return decide.Rotation(r, pp, g), nil
}

// RevokeToken revokes a token. An access token is revoked alone, leaving its
// refresh token usable. A refresh token, live or already rotated, revokes its
// whole family (RFC 7009 §2.1): every token issued from the same code,
// descendants of the presented one included, stops working, and a later
// presentation of any of them is unknown. An unknown token, or an access
// token already dead, is not an error (RFC 7009). It returns ErrNotFound when
// r.PluginID names no plugin, and the error of Authorize when that refuses;
// then nothing changes.
func (db *DB) RevokeToken(ctx context.Context, r store.Revocation) error {
	if err := r.Check(); err != nil {
		return err
	}
	// Refusals, unknown tokens and tokens already revoked need no write.
	_, err := db.checkAndWrite(ctx, func(tx txn, lookup pluginLookup) (decide.Plan, error) {
		return planRevocation(tx, r, lookup)
	})
	return err
}

// planRevocation reads what a revocation needs inside tx and plans it
// (decide.Revocation).
func planRevocation(tx txn, r store.Revocation, lookup pluginLookup) (decide.Plan, error) {
	var pp *store.Plugin
	if r.PluginID != "" {
		var err error
		if pp, err = optional(lookup(tx, r.PluginID)); err != nil {
			return decide.Plan{}, err
		}
	}
	g, err := grant(tx, r.Token.Key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return decide.Plan{}, err
	}
	return decide.Revocation(r, pp, g), nil
}

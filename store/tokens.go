package store

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// putGrant stores g under its key. Keys carry 64 random bits within their
// family (NewGrantKey), so it does not look for a grant already there: that
// would cost a B+tree descent per exchange, inside the group commit, for an
// event that does not happen.
func putGrant(tx txn, g *Grant) error {
	return put(tx, bucketGrants, g.Key[:], g)
}

// revokeFamily deletes every grant of the family (all the tokens descended
// from one auth code) inside the write transaction tx, and drops the cached
// tokens before the commit makes the revocation visible.
func (db *DB) revokeFamily(tx txn, fam Family) error {
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
func grant(tx txn, key Key) (*Grant, error) {
	g := &Grant{Key: key}
	ok, err := get(tx, bucketGrants, key[:], g)
	if err != nil {
		return nil, err
	}
	if !ok || tx.Bucket(bucketPlugins).Get([]byte(g.PluginID)) == nil {
		return nil, ErrNotFound
	}
	return g, nil
}

// presented reads the grant a Ref names and tells which of its tokens the
// Ref presents. It returns ErrNotFound when there is no such grant, neither
// secret half matches, or the grant's plugin has been deleted.
func presented(tx txn, ref Ref) (*Grant, TokenKind, error) {
	g, err := grant(tx, ref.Key)
	if err != nil {
		return nil, "", err
	}
	kind, ok := g.presents(ref)
	if !ok {
		return nil, "", ErrNotFound
	}
	return g, kind, nil
}

// Token returns the token a presented Ref names. It returns ErrNotFound when
// there is no such token, its secret half does not match, or its plugin has
// been deleted. It does not judge expiry, rotation or revocation: the caller
// asks Token.Active with its clock.
//
// The token is shared with other callers (it may come from the cache): read
// it, never modify it. Sharing it is what lets a repeated lookup allocate
// nothing.
func (db *DB) Token(ctx context.Context, ref Ref) (*Token, error) {
	e, kind, hit, unknown := db.cache.get(ref)
	switch {
	case hit:
		return e.token(kind), nil
	case unknown:
		return nil, ErrNotFound
	}
	epoch := db.cache.epoch.Load()
	var g *Grant
	var stored bool
	err := db.view(ctx, func(tx txn) error {
		var err error
		g, kind, err = presented(tx, ref)
		if errors.Is(err, ErrNotFound) { // no grant, or a wrong secret, or a deleted plugin's
			stored = tx.Bucket(bucketGrants).Get(ref.Key[:]) != nil
		}
		return err
	})
	if errors.Is(err, ErrNotFound) && !stored {
		db.cache.noteAbsent(ref.Key)
	}
	if err != nil {
		return nil, err
	}
	return db.cache.fill(g, epoch).token(kind), nil
}

// Rotation asks RotateRefreshToken to exchange a refresh token for a new
// grant.
type Rotation struct {
	PluginID string
	// Refresh is the presented refresh token.
	Refresh Ref
	Now     time.Time
	// Grace is how long after its rotation a refresh token may be presented
	// again and still be answered with a new grant instead of revoking its
	// family (for clients that retry after losing a response). Zero means
	// any reuse revokes.
	Grace time.Duration
	// Authorize is called inside the write transaction with the plugin as
	// stored, before the token is looked at; when it returns an error,
	// RotateRefreshToken returns it and nothing is written.
	Authorize func(Plugin) error
	// New carries the new grant's Key (from NewGrantKey of the presented
	// token's key), secrets and times. Plugin, base and scopes are copied
	// from the presented grant: a refresh never changes scopes.
	New Grant
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
func (db *DB) RotateRefreshToken(ctx context.Context, r Rotation) (Grant, error) {
	if err := r.Check(); err != nil {
		return Grant{}, err
	}
	// As in RedeemAuthCode, refusals are decided on a read first.
	var pre Plan
	if err := db.view(ctx, func(tx txn) error {
		var err error
		pre, err = planRotation(tx, r, db.plugins.peek)
		return err
	}); err != nil {
		return Grant{}, err
	}
	if !pre.Writes() {
		return Grant{}, pre.Outcome
	}
	var fresh Grant
	err := db.batch(ctx, func(tx txn) (error, error) {
		plan, err := planRotation(tx, r, db.plugins.inWrite)
		if err != nil {
			return nil, err
		}
		fresh = plan.Result
		return plan.Outcome, db.apply(tx, plan)
	})
	if err != nil {
		return Grant{}, err
	}
	return fresh, nil
}

// planRotation reads what a rotation needs inside tx and plans it
// (PlanRotation).
func planRotation(tx txn, r Rotation, lookup func(txn, string) (Plugin, error)) (Plan, error) {
	pp, err := optional(lookup(tx, r.PluginID))
	if err != nil {
		return Plan{}, err
	}
	g, err := grant(tx, r.Refresh.Key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Plan{}, err
	}
	return PlanRotation(r, pp, g), nil
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
	Now       time.Time
}

// RevokeToken revokes a token. An access token is revoked alone, leaving its
// refresh token usable. A refresh token, live or already rotated, revokes its
// whole family (RFC 7009 §2.1): every token issued from the same code,
// descendants of the presented one included, stops working, and a later
// presentation of any of them is unknown. An unknown token, or an access
// token already dead, is not an error (RFC 7009). It returns ErrNotFound when
// r.PluginID names no plugin, and the error of Authorize when that refuses;
// then nothing changes.
func (db *DB) RevokeToken(ctx context.Context, r Revocation) error {
	if err := r.Check(); err != nil {
		return err
	}
	// Refusals, unknown tokens and tokens already revoked need no write.
	var pre Plan
	if err := db.view(ctx, func(tx txn) error {
		var err error
		pre, err = planRevocation(tx, r, db.plugins.peek)
		return err
	}); err != nil {
		return err
	}
	if !pre.Writes() {
		return pre.Outcome
	}
	return db.batch(ctx, func(tx txn) (error, error) {
		plan, err := planRevocation(tx, r, db.plugins.inWrite)
		if err != nil {
			return nil, err
		}
		return plan.Outcome, db.apply(tx, plan)
	})
}

// planRevocation reads what a revocation needs inside tx and plans it
// (PlanRevocation).
func planRevocation(tx txn, r Revocation, lookup func(txn, string) (Plugin, error)) (Plan, error) {
	var pp *Plugin
	if r.PluginID != "" {
		var err error
		if pp, err = optional(lookup(tx, r.PluginID)); err != nil {
			return Plan{}, err
		}
	}
	g, err := grant(tx, r.Token.Key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Plan{}, err
	}
	return PlanRevocation(r, pp, g), nil
}

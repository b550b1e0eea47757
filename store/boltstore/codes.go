package boltstore

import (
	"bytes"
	"context"
	"errors"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// CreateAuthCode stores a new auth code for an existing plugin. It returns
// ErrNotFound when the plugin does not exist and ErrExists when the code's
// key is already taken (80 random bits per millisecond make that a bug, not
// bad luck).
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	return db.batch(ctx, func(tx txn) (error, error) {
		if _, err := db.plugins.inWrite(tx, c.PluginID); err != nil {
			return err, nil
		}
		if tx.Bucket(bucketCodes).Get(c.Key[:]) != nil {
			return store.ErrExists, nil
		}
		if err := put(tx, bucketCodes, c.Key[:], &c); err != nil {
			return nil, err
		}
		return nil, index(tx, &c, nil) // due at its expiry, until a redemption moves it
	})
}

// RedeemAuthCode checks and consumes an auth code and stores the token pair
// issued for it, all in one write transaction: of any number of concurrent
// redemptions of one code, exactly one succeeds.
//
// It returns ErrNotFound when the plugin does not exist; the error of
// Authorize when that refuses; ErrInvalidCode when the code is unknown (or
// its secret half does not match), expired at r.Now, or bound to another
// plugin or base; in those cases nothing is written. It returns
// ErrCodeReplayed when the plugin's own code was already redeemed: then
// every token issued from the code (rotated descendants included) has been
// revoked.
func (db *DB) RedeemAuthCode(ctx context.Context, r store.Redemption) error {
	if err := r.Check(); err != nil {
		return err
	}
	_, err := db.checkAndWrite(ctx, func(tx txn, lookup pluginLookup) (decide.Plan, error) {
		return planRedemption(tx, r, lookup)
	})
	return err
}

// pluginLookup reads a plugin inside a transaction: the read cache on a
// read, the write cache inside the group commit.
type pluginLookup func(txn, string) (store.Plugin, error)

// checkAndWrite plans a check-and-write and applies the plan, returning it
// and its outcome. Refusals write nothing, so they are decided on a read
// transaction first: a wrong guess costs a read, never a commit and its
// fsync, and does not queue behind real writes. The write transaction then
// plans again, authoritatively, and applies that plan.
func (db *DB) checkAndWrite(ctx context.Context, plan func(txn, pluginLookup) (decide.Plan, error)) (decide.Plan, error) {
	var pre decide.Plan
	if err := db.view(ctx, func(tx txn) error {
		var err error
		pre, err = plan(tx, db.plugins.peek)
		return err
	}); err != nil {
		return decide.Plan{}, err
	}
	if !pre.Writes() {
		return pre, pre.Outcome
	}
	var done decide.Plan
	err := db.batch(ctx, func(tx txn) (error, error) {
		p, err := plan(tx, db.plugins.inWrite)
		if err != nil {
			return nil, err
		}
		done = p
		return p.Outcome, db.apply(tx, p)
	})
	return done, err
}

// planRedemption reads what a redemption needs inside tx and plans it
// (decide.Redemption): the code, or its family's tombstone, or else the
// family's first grant. lookup reads the plugin (from the write cache
// inside the group commit).
func planRedemption(tx txn, r store.Redemption, lookup pluginLookup) (decide.Plan, error) {
	pp, err := optional(lookup(tx, r.PluginID))
	if err != nil {
		return decide.Plan{}, err
	}
	fam := r.Code.Key.Family()
	var c *store.AuthCode
	for _, key := range []store.Key{r.Code.Key, decide.TombstoneKey(fam)} {
		stored := store.AuthCode{Key: key}
		ok, err := get(tx, bucketCodes, key[:], &stored)
		if err != nil {
			return decide.Plan{}, err
		}
		if ok {
			c = &stored
			break
		}
	}
	var first *store.Grant
	if c == nil {
		if k, v := tx.Bucket(bucketGrants).Cursor().Seek(fam[:]); k != nil && bytes.HasPrefix(k, fam[:]) {
			first = &store.Grant{Key: store.Key(k)}
			if err := decode(bucketGrants, k, v, first); err != nil {
				return decide.Plan{}, err
			}
		}
	}
	return decide.Redemption(r, pp, c, first), nil
}

// apply writes a plan inside the write transaction tx, dropping the cached
// views of what it changes before the commit makes the change visible.
func (db *DB) apply(tx txn, plan decide.Plan) error {
	if plan.RevokeFamily != nil {
		if err := db.revokeFamily(tx, *plan.RevokeFamily); err != nil {
			return err
		}
	}
	if len(plan.Changed) > 0 {
		db.cache.drop(plan.Changed...)
	}
	if c := plan.Consume; c != nil {
		if err := tx.Bucket(bucketCodes).Delete(c.Key[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketExpiry).Delete(codec.ExpiryKey(decide.Deadline(c, nil), codec.ExpiryCode, c.Key)); err != nil {
			return err
		}
	}
	if t := plan.Tombstone; t != nil {
		if err := put(tx, bucketCodes, t.Key[:], t); err != nil {
			return err
		}
		if err := index(tx, t, nil); err != nil {
			return err
		}
	}
	for i := range plan.Grants {
		if err := putGrant(tx, &plan.Grants[i]); err != nil {
			return err
		}
	}
	return nil
}

// AuthCode returns the code stored under key, or ErrNotFound: a code not
// yet redeemed (a redemption consumes it), or a tombstone (a version 5
// file's redeemed code, or decide.TombstoneKey of a revoked family). It is
// for operators and tests: it does not check a secret.
func (db *DB) AuthCode(ctx context.Context, key store.Key) (store.AuthCode, error) {
	var c store.AuthCode
	err := db.view(ctx, func(tx txn) error {
		ok, err := get(tx, bucketCodes, key[:], &c)
		if err == nil && !ok {
			err = store.ErrNotFound
		}
		c.Key = key
		return err
	})
	return c, err
}

// optional turns a lookup's ErrNotFound into a nil record, which is what
// the decisions of package decide take for "absent".
func optional(p store.Plugin, err error) (*store.Plugin, error) {
	switch {
	case err == nil:
		return &p, nil
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	}
	return nil, err
}

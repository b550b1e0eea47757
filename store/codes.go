package store

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CreateAuthCode stores a new auth code for an existing plugin. It returns
// ErrNotFound when the plugin does not exist and ErrExists in the (random,
// 2^-128) case that the code's hash is already stored.
func (db *DB) CreateAuthCode(ctx context.Context, c AuthCode) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		if _, err := plugin(tx, c.PluginID); err != nil {
			return err
		}
		if tx.Bucket(bucketCodes).Get(c.Hash[:]) != nil {
			return ErrExists
		}
		return put(tx, bucketCodes, c.Hash[:], c)
	})
}

// Redemption asks RedeemAuthCode to exchange one auth code for a token pair.
type Redemption struct {
	PluginID string
	BaseID   string
	Code     Hash
	Now      time.Time
	// Authorize is called inside the write transaction with the plugin as
	// stored, before the code is looked at: it checks the caller's secret
	// and the requested scopes. When it returns an error, RedeemAuthCode
	// returns that error and nothing is written, so the code stays usable.
	Authorize func(Plugin) error
	// Access and Refresh are stored when the code is valid. Their Code and
	// Pair fields are set by RedeemAuthCode.
	Access, Refresh Token
}

// RedeemAuthCode checks and consumes an auth code and stores the token pair
// issued for it, all in one write transaction: of any number of concurrent
// redemptions of one code, exactly one succeeds.
//
// It returns ErrNotFound when the plugin does not exist; the error of
// Authorize when that refuses; and ErrInvalidCode when the code is unknown,
// expired at r.Now, already redeemed, or bound to another plugin or base. In
// every error case nothing is written.
func (db *DB) RedeemAuthCode(ctx context.Context, r Redemption) error {
	if r.Authorize == nil {
		return errors.New("store: Redemption.Authorize is required")
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		p, err := plugin(tx, r.PluginID)
		if err != nil {
			return err
		}
		if err := r.Authorize(p); err != nil {
			return err
		}
		var c AuthCode
		ok, err := get(tx, bucketCodes, r.Code[:], &c)
		switch {
		case err != nil:
			return err
		case !ok, !c.RedeemedAt.IsZero(), !r.Now.Before(c.ExpiresAt),
			c.PluginID != r.PluginID, c.BaseID != r.BaseID:
			return ErrInvalidCode
		}
		c.RedeemedAt = r.Now
		if err := put(tx, bucketCodes, r.Code[:], c); err != nil {
			return err
		}
		access, refresh := r.Access, r.Refresh
		access.Code, refresh.Code = r.Code, r.Code
		access.Pair, refresh.Pair = refresh.Hash, access.Hash
		if err := putToken(tx, access); err != nil {
			return err
		}
		return putToken(tx, refresh)
	})
}

// putToken stores t under its hash, refusing to overwrite one.
func putToken(tx *bolt.Tx, t Token) error {
	if tx.Bucket(bucketTokens).Get(t.Hash[:]) != nil {
		return ErrExists
	}
	return put(tx, bucketTokens, t.Hash[:], t)
}

// Token returns the token stored under hash. It returns ErrNotFound when
// there is no such token or its plugin has been deleted. It does not judge
// expiry: the caller compares ExpiresAt with its clock.
func (db *DB) Token(ctx context.Context, hash Hash) (Token, error) {
	var t Token
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok, err := get(tx, bucketTokens, hash[:], &t)
		if err != nil {
			return err
		}
		if !ok || tx.Bucket(bucketPlugins).Get([]byte(t.PluginID)) == nil {
			return ErrNotFound
		}
		t.Hash = hash
		return nil
	})
	return t, err
}

// AuthCode returns the code stored under hash, redeemed or not, or
// ErrNotFound.
func (db *DB) AuthCode(ctx context.Context, hash Hash) (AuthCode, error) {
	var c AuthCode
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok, err := get(tx, bucketCodes, hash[:], &c)
		if err == nil && !ok {
			err = ErrNotFound
		}
		c.Hash = hash
		return err
	})
	return c, err
}

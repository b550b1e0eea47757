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
// Authorize when that refuses; ErrInvalidCode when the code is unknown,
// expired at r.Now, or bound to another plugin or base; in those cases
// nothing is written. It returns ErrCodeReplayed when the plugin's own code
// was already redeemed: then every token issued from the code (access and
// refresh, rotated descendants included) has been revoked.
func (db *DB) RedeemAuthCode(ctx context.Context, r Redemption) error {
	if r.Authorize == nil {
		return errors.New("store: Redemption.Authorize is required")
	}
	var replayed bool
	err := db.update(ctx, func(tx *bolt.Tx) error {
		replayed = false
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
		case !ok, c.PluginID != r.PluginID:
			return ErrInvalidCode
		case !c.RedeemedAt.IsZero():
			// RFC 6749 §4.1.2: deny, and revoke what the code gave. The
			// revocation must commit, so this is not returned as an error.
			replayed = true
			return revokeFamily(tx, r.Code)
		case !r.Now.Before(c.ExpiresAt), c.BaseID != r.BaseID:
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
	if err == nil && replayed {
		return ErrCodeReplayed
	}
	return err
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

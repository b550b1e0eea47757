package store

import (
	"errors"
	"fmt"
	"time"
)

// The decisions below are the contract of the store's check-and-write
// operations, shared by every backend: a backend reads the records (nil
// when absent), asks the decision, and writes what it says in the same
// atomic step (one bbolt write transaction; one etcd transaction guarded by
// the revisions it read).

// DecideRedemption decides a redemption from the plugin and the code as
// stored (nil when absent). A nil outcome means the code may be redeemed.
// Otherwise the outcome is ErrNotFound (no plugin), Authorize's error,
// ErrInvalidCode, or ErrCodeReplayed (the backend must then revoke the
// code's family).
//
// For an unknown plugin it still runs Authorize on a placeholder, so that
// answering "unknown plugin" costs what answering "wrong secret" does.
func DecideRedemption(r Redemption, p *Plugin, c *AuthCode) error {
	if p == nil {
		_ = r.Authorize(Plugin{})
		return ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	switch {
	case c == nil, !r.Code.matches(c.Secret), c.PluginID != r.PluginID:
		return ErrInvalidCode
	case !c.RedeemedAt.IsZero():
		return ErrCodeReplayed
	case !r.Now.Before(c.ExpiresAt), c.BaseID != r.BaseID:
		return ErrInvalidCode
	}
	return nil
}

// DecideRotation decides a rotation from the plugin and the presented grant
// as stored (nil when absent, or when its plugin is gone). A nil outcome
// means the grant may be rotated (for the first time, or again within the
// grace period). Otherwise the outcome is ErrNotFound (no plugin),
// Authorize's error, ErrInvalidToken, or ErrTokenReused (the backend must
// then revoke the grant's family).
//
// Whether the token was rotated before is a fact of the stored record, not a
// comparison of two clocks: with no grace every presentation after the first
// successful rotation is reuse. With a grace period, the age of the rotation
// is r.Now minus the stored RotatedAt, and only an age in [0, Grace) is
// inside the window: a request stamped before the rotation it follows (a
// race, a clock stepped back, a replica whose clock lags) sees a negative
// age and is treated as reuse, so clock order can never widen the window.
func DecideRotation(r Rotation, p *Plugin, g *Grant) error {
	if p == nil {
		_ = r.Authorize(Plugin{})
		return ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	if g == nil {
		return ErrInvalidToken
	}
	kind, ok := g.presents(r.Refresh)
	switch {
	case !ok, kind != KindRefresh, g.PluginID != r.PluginID, !r.Now.Before(g.RefreshExpiresAt):
		return ErrInvalidToken
	case !g.RotatedAt.IsZero() && !withinGrace(r.Now.Sub(g.RotatedAt), r.Grace):
		return ErrTokenReused
	}
	return nil
}

// withinGrace reports whether a rotation age lies in the grace window
// [0, grace).
func withinGrace(age, grace time.Duration) bool {
	return grace > 0 && age >= 0 && age < grace
}

// DecideRevocation decides a revocation from the plugin (when r.PluginID is
// set) and the grant as stored (nil when absent). It returns what to revoke:
// RevokeNothing (unknown token, another plugin's, an access token already
// dead), RevokeAccess (the grant's access token alone), or RevokeFamily (a
// refresh token, live or already rotated: RFC 7009 §2.1 has the whole grant
// revoked, so every token descended from the code, and from the presented
// token, stops working at once). A refusal (ErrNotFound for the plugin,
// Authorize's error) comes with RevokeNothing.
func DecideRevocation(r Revocation, p *Plugin, g *Grant) (Revoke, error) {
	if r.PluginID != "" {
		if p == nil {
			return RevokeNothing, ErrNotFound
		}
		if r.Authorize != nil {
			if err := r.Authorize(*p); err != nil {
				return RevokeNothing, err
			}
		}
	}
	if g == nil {
		return RevokeNothing, nil
	}
	kind, ok := g.presents(r.Token)
	switch {
	case !ok:
		return RevokeNothing, nil
	case r.PluginID != "" && g.PluginID != r.PluginID:
		return RevokeNothing, nil
	case kind == KindRefresh:
		return RevokeFamily, nil
	case !g.AccessRevokedAt.IsZero(), !g.RotatedAt.IsZero():
		return RevokeNothing, nil
	}
	return RevokeAccess, nil
}

// Revoke is what a revocation does.
type Revoke int

// What a revocation does.
const (
	RevokeNothing Revoke = iota
	RevokeAccess
	RevokeFamily
)

// SweepVerdict decides whether the sweeper removes a stored code
// (isGrant false) or grant, from its stored bytes, at now: a code past its
// expiry (redeemed or not), a grant whose tokens have both expired (rotated
// ones included), and the records of deleted plugins go. A record that does
// not decode is reported as undecodable and left alone, so that one bad
// record never stops the sweep of the rest.
func SweepVerdict(isGrant bool, raw []byte, now time.Time, pluginExists func(id string) (bool, error)) (gone, undecodable bool, err error) {
	var pluginID string
	var expires time.Time
	if isGrant {
		var g Grant
		if g.unmarshal(raw) != nil {
			return false, true, nil
		}
		pluginID, expires = g.PluginID, g.expiresAt()
	} else {
		var c AuthCode
		if c.unmarshal(raw) != nil {
			return false, true, nil
		}
		pluginID, expires = c.PluginID, c.ExpiresAt
	}
	if !now.Before(expires) {
		return true, false, nil
	}
	ok, err := pluginExists(pluginID)
	return !ok, false, err
}

// ErrInvalidArgument means a request to the store is malformed (a caller's
// bug, not a client's mistake): nothing was read or written.
var ErrInvalidArgument = errors.New("store: invalid argument")

// Check reports a malformed redemption (ErrInvalidArgument): every backend
// calls it first.
func (r Redemption) Check() error {
	switch {
	case r.Authorize == nil:
		return fmt.Errorf("%w: Redemption.Authorize is required", ErrInvalidArgument)
	case r.Grant.Key.Family() != r.Code.Key.Family():
		return fmt.Errorf("%w: the grant must be in the code's family", ErrInvalidArgument)
	case r.Now.IsZero():
		return fmt.Errorf("%w: Redemption.Now is required", ErrInvalidArgument)
	}
	return nil
}

// Check reports a malformed rotation (ErrInvalidArgument).
func (r Rotation) Check() error {
	switch {
	case r.Authorize == nil:
		return fmt.Errorf("%w: Rotation.Authorize is required", ErrInvalidArgument)
	case r.New.Key.Family() != r.Refresh.Key.Family():
		return fmt.Errorf("%w: the new grant must be in the presented token's family", ErrInvalidArgument)
	case r.Now.IsZero():
		return fmt.Errorf("%w: Rotation.Now is required", ErrInvalidArgument)
	}
	return nil
}

// Check reports a malformed revocation (ErrInvalidArgument).
func (r Revocation) Check() error {
	if r.Now.IsZero() {
		return fmt.Errorf("%w: Revocation.Now is required", ErrInvalidArgument)
	}
	return nil
}

// Sweeping runs a backend's sweep of one kind of record, codes first, then
// grants, and adds up what they removed. sweep decides each record with
// SweepVerdict and reports an undecodable one with undecodable (its name,
// bucket/key), which Sweeping collects.
func Sweeping(sweep func(isGrant bool, undecodable func(name string)) (removed int, err error)) (SweepResult, error) {
	var res SweepResult
	note := func(name string) { res.Undecodable = append(res.Undecodable, name) }
	for _, isGrant := range []bool{false, true} {
		n, err := sweep(isGrant, note)
		if isGrant {
			res.Grants = n
		} else {
			res.Codes = n
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

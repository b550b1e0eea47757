package store

import (
	"errors"
	"fmt"
	"time"
)

// The requests of the three check-and-write operations. Each backend calls
// the request's Check first; the service fills them from what a client
// presented.

// Redemption asks RedeemAuthCode to exchange one auth code for a token pair.
type Redemption struct {
	PluginID string
	BaseID   string
	Code     Ref
	Now      time.Time
	// Authorize is called inside the write transaction with the plugin as
	// stored, before the code is looked at: it checks the caller's secret
	// and the requested scopes. When it returns an error, RedeemAuthCode
	// returns that error and nothing is written, so the code stays usable.
	Authorize func(Plugin) error
	// Grant is stored when the code is valid. Its Key must come from
	// NewGrantKey(Code.Key), so that it belongs to the code's family.
	Grant Grant
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
	// the store returns it and nothing is written.
	Authorize func(Plugin) error
	// New carries the new grant's Key (from NewGrantKey of the presented
	// token's key), secrets and times. Plugin, base and scopes are copied
	// from the presented grant: a refresh never changes scopes.
	New Grant
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

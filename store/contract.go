package store

import (
	"context"
	"time"
)

// Store is the storage contract, declared once: every backend keeps it (the
// bbolt DB here, etcdstore's DB), the service uses it (server.Store is this
// type), and the conformance suite (package storetest) checks it. Secrets
// arrive only as hashes (Hash, Ref); records come back as the caller's own
// values. Every method that finds nothing returns ErrNotFound; a networked
// backend that cannot be reached returns an error wrapping ErrUnavailable
// (the operation may or may not have happened).
type Store interface {
	// CreatePlugin stores a new plugin, or returns ErrExists.
	CreatePlugin(ctx context.Context, p Plugin) error
	// Plugin returns the plugin with the id, or ErrNotFound.
	Plugin(ctx context.Context, id string) (Plugin, error)
	// DeletePlugin removes the plugin, or returns ErrNotFound. From the
	// moment it returns, its codes and tokens are unknown to every read.
	DeletePlugin(ctx context.Context, id string) error
	// SetPluginSecret replaces the plugin's secret hash and hint, or
	// returns ErrNotFound; the old secret stops matching when it returns.
	SetPluginSecret(ctx context.Context, id string, secret Hash, hint string, now time.Time) error
	// CreateAuthCode stores a new code for an existing plugin: ErrNotFound
	// when the plugin does not exist, ErrExists when the key is taken.
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// RedeemAuthCode checks and consumes a code and stores the grant issued
	// for it, in one atomic step: of any number of concurrent redemptions
	// of one code, exactly one succeeds. ErrNotFound (no plugin),
	// Authorize's error, or ErrInvalidCode (unknown, expired, another
	// plugin's or base's code) write nothing; ErrCodeReplayed means the
	// code was redeemed before, and its whole family has been revoked.
	RedeemAuthCode(ctx context.Context, r Redemption) error
	// RotateRefreshToken exchanges a live refresh token for a new grant in
	// one atomic step (PlanRotation says when): the presented grant's
	// tokens stop working. ErrNotFound (no plugin), Authorize's error or
	// ErrInvalidToken (unknown, expired, not a refresh token, another
	// plugin's) write nothing; ErrTokenReused means the token was rotated
	// before (outside the grace), and its whole family has been revoked.
	RotateRefreshToken(ctx context.Context, r Rotation) (Grant, error)
	// RevokeToken revokes a token (PlanRevocation says what): an access
	// token alone, or a refresh token's whole family. An unknown token is
	// not an error (RFC 7009); ErrNotFound when r.PluginID names no plugin,
	// Authorize's error when that refuses.
	RevokeToken(ctx context.Context, r Revocation) error
	// Token returns the token a Ref presents, whatever its state (the
	// caller asks Token.Active), or ErrNotFound (unknown, wrong secret, a
	// deleted plugin's). Reads are linearizable with every write above.
	// The token may be shared with other callers: read it, never modify it.
	Token(ctx context.Context, ref Ref) (*Token, error)
	// Sweep deletes what SweepVerdict says can go at now.
	Sweep(ctx context.Context, now time.Time) (SweepResult, error)
	// Ping reports whether the store can serve (and, after a failed write,
	// whether it can write again).
	Ping(ctx context.Context) error
}

var _ Store = (*DB)(nil)

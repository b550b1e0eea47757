// Package store is plugintoken's storage contract: the records (plugins,
// auth codes, grants and the tokens they hold), the requests of the
// check-and-write operations, the sentinel errors, and the Store interface
// every backend keeps. The backends are store/boltstore (a bbolt file, the
// default) and store/etcdstore (for several replicas); store/storetest is
// the conformance suite both pass, for a backend of your own.
//
// The store never sees a secret as given. A plugin secret arrives as its
// SHA-256 (type Hash). A code or token is a public Key and a secret half:
// the record is stored under the Key and holds only the SHA-256 of the
// secret half, which every lookup compares in constant time (type Ref).
// The record types are the store's own, so the stored form does not change
// when the HTTP API (package gen) does.
package store

import (
	"context"
	"errors"
	"time"
)

// Store is the storage contract, declared once: every backend keeps it
// (boltstore.DB, etcdstore.DB), the service uses it (core.Config.Store),
// and the conformance suite (package storetest) checks it. Secrets
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
	// one atomic step: the presented grant's tokens stop working. Whether
	// the token was rotated before is read from the stored record: with
	// Grace 0 any second presentation is reuse; with a grace, only a
	// rotation age in [0, Grace) is not. ErrNotFound (no plugin), Authorize's error or
	// ErrInvalidToken (unknown, expired, not a refresh token, another
	// plugin's) write nothing; ErrTokenReused means the token was rotated
	// before (outside the grace), and its whole family has been revoked.
	RotateRefreshToken(ctx context.Context, r Rotation) (Grant, error)
	// RevokeToken revokes a token: an access token alone, or a refresh token's whole family. An unknown token is
	// not an error (RFC 7009); ErrNotFound when r.PluginID names no plugin,
	// Authorize's error when that refuses.
	RevokeToken(ctx context.Context, r Revocation) error
	// Token returns the token a Ref presents, whatever its state (the
	// caller asks Token.Active), or ErrNotFound (unknown, wrong secret, a
	// deleted plugin's). Reads are linearizable with every write above.
	// The token may be shared with other callers: read it, never modify it.
	Token(ctx context.Context, ref Ref) (*Token, error)
	// Sweep deletes what can no longer be used or recognised at now: codes
	// past their expiry (redeemed or not), grants whose tokens have both
	// expired (rotated ones included), and the records of deleted plugins.
	// A record that does not decode is left alone and named in the result.
	Sweep(ctx context.Context, now time.Time) (SweepResult, error)
	// Ping reports whether the store can serve (and, after a failed write,
	// whether it can write again).
	Ping(ctx context.Context) error
}

// Sentinel errors. Every method documents which of them it returns; callers
// test with errors.Is.
var (
	// ErrNotFound means the plugin (or token) does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists means a plugin with that id is already stored.
	ErrExists = errors.New("store: already exists")
	// ErrInvalidCode means an auth code is unknown, expired, or was issued
	// for another plugin or base.
	ErrInvalidCode = errors.New("store: invalid auth code")
	// ErrCodeReplayed means an auth code was redeemed before. The tokens
	// issued from it have been revoked (and that revocation committed).
	ErrCodeReplayed = errors.New("store: auth code replayed")
	// ErrInvalidToken means a token is unknown, expired, of the wrong kind,
	// or belongs to another plugin.
	ErrInvalidToken = errors.New("store: invalid token")
	// ErrUnavailable means the storage engine could not be reached (or did
	// not answer in time): the operation may or may not have happened, and
	// may be retried. The bbolt backend never returns it; a networked backend
	// does.
	ErrUnavailable = errors.New("store: storage unavailable")
	// ErrTokenReused means a refresh token that was already rotated was
	// presented again. Its whole family has been revoked (and that
	// revocation committed).
	ErrTokenReused = errors.New("store: refresh token reused")
)

// SweepResult counts what Sweep removed.
type SweepResult struct {
	// Codes and Grants removed; a grant is an access and a refresh token.
	Codes, Grants int
	// Undecodable names the records (bucket/key in hex) that did not
	// decode: they were left in place, and the sweep went on without them.
	Undecodable []string
}

// Package decide holds the decisions of the store's check-and-write
// operations, shared by every backend: a backend reads the records a
// request needs (nil when absent), asks for a Plan, and applies what it
// says in one atomic step. It also says what a stored grant's tokens are
// (View, Presents) and when a stored record can be swept (SweepVerdict).
package decide

import (
	"crypto/subtle"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

// The decisions below are the contract of the store's check-and-write
// operations, shared by every backend: a backend reads the records (nil
// when absent), asks for a plan (Redemption, Rotation, Revocation), and
// applies what it says in the same atomic step (one
// bbolt write transaction; one etcd transaction guarded by the revisions it
// read).

// redemption decides a redemption from the plugin and the code as
// stored (nil when absent). A nil outcome means the code may be redeemed.
// Otherwise the outcome is ErrNotFound (no plugin), Authorize's error,
// ErrInvalidCode, or ErrCodeReplayed (the backend must then revoke the
// code's family).
//
// For an unknown plugin it still runs Authorize on a placeholder, so that
// answering "unknown plugin" costs what answering "wrong secret" does.
func redemption(r store.Redemption, p *store.Plugin, c *store.AuthCode) error {
	if p == nil {
		_ = r.Authorize(store.Plugin{})
		return store.ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	switch {
	case c == nil, !Matches(r.Code, c.Secret), c.PluginID != r.PluginID:
		return store.ErrInvalidCode
	case !c.RedeemedAt.IsZero():
		return store.ErrCodeReplayed
	case !r.Now.Before(c.ExpiresAt), c.BaseID != r.BaseID:
		return store.ErrInvalidCode
	}
	return nil
}

// rotation decides a rotation from the plugin and the presented grant
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
func rotation(r store.Rotation, p *store.Plugin, g *store.Grant) error {
	if p == nil {
		_ = r.Authorize(store.Plugin{})
		return store.ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	if g == nil {
		return store.ErrInvalidToken
	}
	kind, ok := Presents(g, r.Refresh)
	switch {
	case !ok, kind != store.KindRefresh, g.PluginID != r.PluginID, !r.Now.Before(g.RefreshExpiresAt):
		return store.ErrInvalidToken
	case !g.RotatedAt.IsZero() && !withinGrace(r.Now.Sub(g.RotatedAt), r.Grace):
		return store.ErrTokenReused
	}
	return nil
}

// withinGrace reports whether a rotation age lies in the grace window
// [0, grace).
func withinGrace(age, grace time.Duration) bool {
	return grace > 0 && age >= 0 && age < grace
}

// revocation decides a revocation from the plugin (when r.PluginID is
// set) and the grant as stored (nil when absent). It returns what to revoke:
// revokeNothing (unknown token, another plugin's, an access token already
// dead), revokeAccess (the grant's access token alone), or revokeFamily (a
// refresh token, live or already rotated: RFC 7009 §2.1 has the whole grant
// revoked, so every token descended from the code, and from the presented
// token, stops working at once). A refusal (ErrNotFound for the plugin,
// Authorize's error) comes with revokeNothing.
func revocation(r store.Revocation, p *store.Plugin, g *store.Grant) (revoke, error) {
	if r.PluginID != "" {
		if p == nil {
			return revokeNothing, store.ErrNotFound
		}
		if r.Authorize != nil {
			if err := r.Authorize(*p); err != nil {
				return revokeNothing, err
			}
		}
	}
	if g == nil {
		return revokeNothing, nil
	}
	kind, ok := Presents(g, r.Token)
	switch {
	case !ok:
		return revokeNothing, nil
	case r.PluginID != "" && g.PluginID != r.PluginID:
		return revokeNothing, nil
	case kind == store.KindRefresh:
		return revokeFamily, nil
	case !g.AccessRevokedAt.IsZero(), !g.RotatedAt.IsZero():
		return revokeNothing, nil
	}
	return revokeAccess, nil
}

// revoke is what a revocation does.
type revoke int

// What a revocation does.
const (
	revokeNothing revoke = iota
	revokeAccess
	revokeFamily
)

// Orphan decides, for the pass that follows a plugin's deletion, whether
// a stored code (isGrant false) or grant belongs to a plugin that no longer
// exists and so goes at once, instead of when its entry comes due. A record
// that does not decode is reported as undecodable and left alone, so that
// one bad record never stops the pass over the rest.
func Orphan(isGrant bool, raw []byte, pluginExists func(id string) (bool, error)) (gone, undecodable bool, err error) {
	var pluginID string
	if isGrant {
		var g store.Grant
		if codec.DecodeGrant(raw, &g) != nil {
			return false, true, nil
		}
		pluginID = g.PluginID
	} else {
		var c store.AuthCode
		if codec.DecodeAuthCode(raw, &c) != nil {
			return false, true, nil
		}
		pluginID = c.PluginID
	}
	ok, err := pluginExists(pluginID)
	return !ok, false, err
}

// Sweeping runs a backend's pass over one kind of record, codes first,
// then grants, and adds up what they removed. sweep decides each record
// with Orphan and reports an undecodable one with undecodable (its name,
// bucket/key), which Sweeping collects.
func Sweeping(sweep func(isGrant bool, undecodable func(name string)) (removed int, err error)) (store.SweepResult, error) {
	var res store.SweepResult
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

// Plan is what a decided check-and-write does, for a backend to apply in
// one atomic step (one bbolt write transaction; one etcd transaction
// guarded by the revisions it read). The decisions below make plans; a
// backend only reads the records they need and applies what they say.
type Plan struct {
	// Outcome is what the caller is told once the plan is applied: nil on
	// success, a detection (ErrCodeReplayed, ErrTokenReused) whose
	// revocation the plan carries, or a refusal with nothing to write.
	Outcome error
	// Consume, when set, is the code a redemption used up: its record and
	// its expiry entry (at its ExpiresAt) are deleted. The grant the
	// redemption stores carries the code's hash instead (CodeSecret).
	Consume *store.AuthCode
	// Tombstone, when set, is stored under its Key (TombstoneKey) with its
	// expiry entry (Deadline): what is kept of the code of a family being
	// revoked, so that a replay of the code is still recognised once none
	// of its grants carries its hash.
	Tombstone *store.AuthCode
	// Grants are stored, each under its Key. Changed lists those that
	// replace a grant already stored (a rotated grant, an access token
	// revoked), whose cached views a backend must drop.
	Grants  []store.Grant
	Changed []store.Key
	// RevokeFamily, when set, deletes every grant of that family.
	RevokeFamily *store.Family
	// Result is the grant a rotation issued.
	Result store.Grant
}

// Redemption decides a redemption (redemption) and says what to write:
// the code consumed and the grant, which carries the code's subject and
// hash; or, for a replay, the family's revocation.
//
// c is the code stored under the presented key or, failing that, its
// family's tombstone (TombstoneKey); nil when there is neither. first is,
// when c is nil, the first grant stored in the code's family (nil when
// none): a grant that carries the code's hash stands for the consumed
// code, so a replay is recognised for as long as any grant of the family
// is stored.
func Redemption(r store.Redemption, p *store.Plugin, c *store.AuthCode, first *store.Grant) Plan {
	carried := c == nil && first != nil && first.CodeSecret != (store.Hash{})
	if carried {
		c = &store.AuthCode{Secret: first.CodeSecret, PluginID: first.PluginID, RedeemedAt: first.IssuedAt}
		if c.RedeemedAt.IsZero() {
			c.RedeemedAt = r.Now
		}
	}
	outcome := redemption(r, p, c)
	switch outcome {
	case nil:
		consumed := *c
		consumed.Key = r.Code.Key
		g := r.Grant
		g.Subject, g.CodeSecret = c.Subject, c.Secret
		return Plan{Consume: &consumed, Grants: []store.Grant{g}}
	case store.ErrCodeReplayed:
		// RFC 6749 §4.1.2: deny, and revoke what the code gave.
		fam := r.Code.Key.Family()
		plan := Plan{Outcome: outcome, RevokeFamily: &fam}
		if carried {
			plan.Tombstone = tombstone(first, r.Now)
		}
		return plan
	}
	return Plan{Outcome: outcome}
}

// TombstoneKey is where the tombstone of a family's code is stored: the
// family followed by zeros. A code's own key is not kept once it is
// consumed (a grant's key keeps only its family), and a code key ends in
// 64 random bits, so no live code is stored there.
func TombstoneKey(f store.Family) store.Key {
	var k store.Key
	copy(k[:], f[:])
	return k
}

// tombstone is what is kept of the code of g's family when the family is
// revoked at now: its hash and plugin, redeemed, kept until g's deadline
// (the sweep keeps it no longer than its family, which is gone). It is nil
// when g does not carry its code's hash: a family of a version 5 store,
// whose code's record is still stored as its tombstone.
func tombstone(g *store.Grant, now time.Time) *store.AuthCode {
	if g.CodeSecret == (store.Hash{}) {
		return nil
	}
	return &store.AuthCode{Key: TombstoneKey(g.Key.Family()), Secret: g.CodeSecret, PluginID: g.PluginID,
		IssuedAt: g.IssuedAt, ExpiresAt: ExpiresAt(g), RedeemedAt: now}
}

// Rotation decides a rotation (rotation) and says what to write:
// the presented grant, ended (on its first rotation), and the new grant,
// which copies plugin, base, scopes and subject from it; or, for a reuse,
// the family's revocation.
func Rotation(r store.Rotation, p *store.Plugin, g *store.Grant) Plan {
	outcome := rotation(r, p, g)
	switch outcome {
	case nil:
		var plan Plan
		if g.RotatedAt.IsZero() {
			ended := *g
			ended.RotatedAt = r.Now
			plan.Grants, plan.Changed = append(plan.Grants, ended), append(plan.Changed, ended.Key)
		}
		fresh := r.New
		fresh.PluginID, fresh.BaseID, fresh.Scopes, fresh.Subject = g.PluginID, g.BaseID, g.Scopes, g.Subject
		fresh.CodeSecret = g.CodeSecret
		fresh.RotatedAt, fresh.AccessRevokedAt = time.Time{}, time.Time{}
		plan.Grants, plan.Result = append(plan.Grants, fresh), fresh
		return plan
	case store.ErrTokenReused:
		// RFC 9700 §4.14.2: a rotated token came back; one of its two
		// holders is not the client. Revoke everything it led to.
		fam := g.Key.Family()
		return Plan{Outcome: outcome, RevokeFamily: &fam, Tombstone: tombstone(g, r.Now)}
	}
	return Plan{Outcome: outcome}
}

// Revocation decides a revocation (revocation) and says what to
// write: the family's revocation, or the grant with its access token
// revoked, or nothing.
func Revocation(r store.Revocation, p *store.Plugin, g *store.Grant) Plan {
	what, refusal := revocation(r, p, g)
	switch {
	case refusal != nil:
		return Plan{Outcome: refusal}
	case what == revokeFamily:
		fam := g.Key.Family()
		return Plan{RevokeFamily: &fam, Tombstone: tombstone(g, r.Now)}
	case what == revokeAccess:
		revoked := *g
		revoked.AccessRevokedAt = r.Now
		return Plan{Grants: []store.Grant{revoked}, Changed: []store.Key{revoked.Key}}
	}
	return Plan{}
}

// Writes reports whether the plan writes anything.
func (p Plan) Writes() bool {
	return p.Consume != nil || p.Tombstone != nil || len(p.Grants) > 0 || p.RevokeFamily != nil
}

// Matches compares the stored secret hash with the presented one in
// constant time: their first codec.StoredSecretLen bytes, all a format 2
// record keeps (128 bits, see package codec), for records of either
// format.
func Matches(r store.Ref, stored store.Hash) bool {
	return subtle.ConstantTimeCompare(r.Secret[:codec.StoredSecretLen], stored[:codec.StoredSecretLen]) == 1
}

// View returns the grant's token of the given kind, as lookups see it.
func View(g *store.Grant, kind store.TokenKind) store.Token {
	t := store.Token{Key: g.Key, Kind: kind, PluginID: g.PluginID, BaseID: g.BaseID, Scopes: g.Scopes,
		IssuedAt: g.IssuedAt, ExpiresAt: g.RefreshExpiresAt, EndedAt: g.RotatedAt, Subject: g.Subject}
	if kind == store.KindAccess {
		t.ExpiresAt = g.AccessExpiresAt
		if !g.AccessRevokedAt.IsZero() && (t.EndedAt.IsZero() || g.AccessRevokedAt.Before(t.EndedAt)) {
			t.EndedAt = g.AccessRevokedAt
		}
	}
	return t
}

// Presents tells which token of g a Ref presents, comparing both secret
// halves in constant time. A Ref of a kind (its prefix) presents only that
// kind's token.
func Presents(g *store.Grant, ref store.Ref) (store.TokenKind, bool) {
	return Kind(ref, Matches(ref, g.AccessSecret), Matches(ref, g.RefreshSecret))
}

// Kind is the kind of token a Ref presents, given whether it matched the
// access and the refresh secret: none when it matched neither, or matched
// the secret of another kind than its own.
func Kind(ref store.Ref, access, refresh bool) (store.TokenKind, bool) {
	var kind store.TokenKind
	switch {
	case access:
		kind = store.KindAccess
	case refresh:
		kind = store.KindRefresh
	default:
		return "", false
	}
	if ref.Kind != "" && ref.Kind != kind {
		return "", false
	}
	return kind, true
}

// ExpiresAt is when the whole grant is of no more use.
func ExpiresAt(g *store.Grant) time.Time {
	if g.AccessExpiresAt.After(g.RefreshExpiresAt) {
		return g.AccessExpiresAt
	}
	return g.RefreshExpiresAt
}

// Due is what the sweeper does with a record whose expiry entry came due.
type Due int

// What the sweeper does with a due record.
const (
	// DueDelete: delete the record and its entry.
	DueDelete Due = iota
	// DueMove: the record stays until the deadline returned; its entry
	// moves there.
	DueMove
	// DueUndecodable: the record does not decode; it and its entry stay,
	// and the sweep names it.
	DueUndecodable
)

// Deadline is when a stored code or grant may first be swept, the time its
// expiry entry is written at: a grant's last token's expiry, a code's
// expiry (a tombstone's is its family's deadline when it was written).
// A code is consumed at its redemption; a tombstone (of a version 5 store,
// or of a revoked family) stays as long as its family lives: Sweep moves
// its entry.
func Deadline(c *store.AuthCode, g *store.Grant) time.Time {
	if g != nil {
		return ExpiresAt(g)
	}
	return c.ExpiresAt
}

// Sweep decides a code (isGrant false) or grant whose entry came due at
// now, from its stored bytes. A grant goes once both its tokens have
// expired. A code goes at its expiry unless it is a tombstone (redeemed: a
// version 5 store's consumed code, or a revoked family's): a replay must
// revoke what the code gave for as long as any of it lives, so a tombstone
// stays until the last grant of its family has expired. familyLatest returns the
// latest deadline of the grants stored in the code's family (zero when
// there is none); it is called only for a redeemed code.
func Sweep(isGrant bool, raw []byte, now time.Time, familyLatest func() (time.Time, error)) (Due, time.Time, error) {
	var deadline time.Time
	if isGrant {
		var g store.Grant
		if codec.DecodeGrant(raw, &g) != nil {
			return DueUndecodable, time.Time{}, nil
		}
		deadline = ExpiresAt(&g)
	} else {
		var c store.AuthCode
		if codec.DecodeAuthCode(raw, &c) != nil {
			return DueUndecodable, time.Time{}, nil
		}
		deadline = c.ExpiresAt
		if !c.RedeemedAt.IsZero() && !now.Before(deadline) {
			latest, err := familyLatest()
			if err != nil {
				return 0, time.Time{}, err
			}
			deadline = latest
		}
	}
	if now.Before(deadline) {
		return DueMove, deadline, nil
	}
	return DueDelete, time.Time{}, nil
}

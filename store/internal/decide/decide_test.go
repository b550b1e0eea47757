package decide

import (
	"errors"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

var (
	t0       = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	plugin   = &store.Plugin{ID: "plu1"}
	allow    = func(store.Plugin) error { return nil }
	errDeny  = errors.New("wrong secret")
	deny     = func(store.Plugin) error { return errDeny }
	codeKey  = store.NewKey(t0)
	codeHash = store.HashOf("code")
)

func code(mod func(*store.AuthCode)) *store.AuthCode {
	c := &store.AuthCode{Key: codeKey, Secret: codeHash, PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	if mod != nil {
		mod(c)
	}
	return c
}

func grant(mod func(*store.Grant)) *store.Grant {
	g := &store.Grant{Key: store.NewGrantKey(codeKey), AccessSecret: store.HashOf("a"), RefreshSecret: store.HashOf("r"),
		PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, AccessExpiresAt: t0.Add(10 * time.Minute), RefreshExpiresAt: t0.Add(time.Hour)}
	if mod != nil {
		mod(g)
	}
	return g
}

// TestRedemption: the rules of a code's redemption, each refusal writing
// nothing, a redemption consuming the code, and a replay revoking the
// code's family, whether its code is stored as a tombstone or stands in
// the hash its grants carry.
func TestRedemption(t *testing.T) {
	carrying := func(mod func(*store.Grant)) *store.Grant {
		return grant(func(g *store.Grant) {
			g.CodeSecret = codeHash
			if mod != nil {
				mod(g)
			}
		})
	}
	ok := store.Redemption{PluginID: "plu1", BaseID: "bse1", Code: store.Ref{Key: codeKey, Secret: codeHash}, Now: t0.Add(time.Minute),
		Authorize: allow, Grant: *grant(nil)}
	for _, tc := range []struct {
		name   string
		r      func(*store.Redemption)
		plugin *store.Plugin
		code   *store.AuthCode
		want   error
		first  *store.Grant // the family's first grant, read when code is nil
	}{
		{"OK", nil, plugin, code(func(c *store.AuthCode) { c.Subject = "alice" }), nil, nil},
		{"ErrNotFound", nil, nil, code(nil), store.ErrNotFound, nil},
		{"AuthorizeRefuses", func(r *store.Redemption) { r.Authorize = deny }, plugin, code(nil), errDeny, nil},
		{"ErrInvalidCodeUnknown", nil, plugin, nil, store.ErrInvalidCode, nil},
		{"ErrInvalidCodeWrongSecret", func(r *store.Redemption) { r.Code.Secret = store.HashOf("other") }, plugin, code(nil), store.ErrInvalidCode, nil},
		{"ErrInvalidCodeOtherPlugin", nil, plugin, code(func(c *store.AuthCode) { c.PluginID = "plu2" }), store.ErrInvalidCode, nil},
		{"ErrInvalidCodeOtherBase", func(r *store.Redemption) { r.BaseID = "bse2" }, plugin, code(nil), store.ErrInvalidCode, nil},
		{"ErrInvalidCodeExpired", func(r *store.Redemption) { r.Now = t0.Add(5 * time.Minute) }, plugin, code(nil), store.ErrInvalidCode, nil},
		{"ErrCodeReplayed", nil, plugin, code(func(c *store.AuthCode) { c.RedeemedAt = t0 }), store.ErrCodeReplayed, nil},
		{"ErrCodeReplayedAfterExpiry", func(r *store.Redemption) { r.Now = t0.Add(time.Hour) }, plugin, code(func(c *store.AuthCode) { c.RedeemedAt = t0 }), store.ErrCodeReplayed, nil},
		{"ErrCodeReplayedCarried", nil, plugin, nil, store.ErrCodeReplayed, carrying(nil)},
		{"ErrCodeReplayedCarriedAfterExpiry", func(r *store.Redemption) { r.Now = t0.Add(time.Hour) }, plugin, nil, store.ErrCodeReplayed, carrying(nil)},
		{"ErrInvalidCodeCarriedWrongSecret", func(r *store.Redemption) { r.Code.Secret = store.HashOf("other") }, plugin, nil, store.ErrInvalidCode, carrying(nil)},
		{"ErrInvalidCodeCarriedOtherPlugin", nil, plugin, nil, store.ErrInvalidCode, carrying(func(g *store.Grant) { g.PluginID = "plu2" })},
		{"ErrInvalidCodeGrantCarriesNothing", nil, plugin, nil, store.ErrInvalidCode, grant(nil)},
		{"ErrNotFoundCarried", nil, nil, nil, store.ErrNotFound, carrying(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			if tc.r != nil {
				tc.r(&r)
			}
			plan := Redemption(r, tc.plugin, tc.code, tc.first)
			if !errors.Is(plan.Outcome, tc.want) || (tc.want == nil) != (plan.Outcome == nil) {
				t.Fatalf("outcome %v, want %v", plan.Outcome, tc.want)
			}
			switch {
			case tc.want == nil:
				if plan.Consume == nil || plan.Consume.Key != codeKey || plan.Consume.ExpiresAt != tc.code.ExpiresAt || len(plan.Grants) != 1 ||
					plan.RevokeFamily != nil || plan.Tombstone != nil {
					t.Errorf("plan %+v: want the code consumed and one grant", plan)
				}
				if g := plan.Grants[0]; g.CodeSecret != codeHash || g.Subject != tc.code.Subject {
					t.Errorf("grant %+v: want it to carry the code's hash and subject", g)
				}
			case errors.Is(tc.want, store.ErrCodeReplayed):
				if plan.RevokeFamily == nil || *plan.RevokeFamily != codeKey.Family() || plan.Consume != nil || len(plan.Grants) > 0 {
					t.Errorf("plan %+v: want the family revoked and nothing else", plan)
				}
				// A code that stood in its grants' hash leaves a tombstone
				// for the replays after this one; a stored one is kept.
				tomb := plan.Tombstone
				switch {
				case tc.first == nil && tomb != nil:
					t.Errorf("tombstone %+v written over a stored code", tomb)
				case tc.first != nil && (tomb == nil || tomb.Key != TombstoneKey(codeKey.Family()) || tomb.Secret != codeHash ||
					tomb.PluginID != "plu1" || tomb.RedeemedAt.IsZero() || tomb.ExpiresAt != ExpiresAt(tc.first)):
					t.Errorf("tombstone %+v: want the code's hash and plugin, redeemed, kept until the grant's deadline", tomb)
				}
			default:
				if plan.Writes() {
					t.Errorf("a refusal writes %+v", plan)
				}
			}
		})
	}
}

// TestRotation: the rules of a refresh, with reuse decided by the stored
// rotation and the grace window [0, grace).
func TestRotation(t *testing.T) {
	live := grant(nil)
	refresh := store.Ref{Key: live.Key, Secret: store.HashOf("r"), Kind: store.KindRefresh}
	ok := store.Rotation{PluginID: "plu1", Refresh: refresh, Now: t0.Add(time.Minute), Authorize: allow, New: *grant(nil)}
	rotatedAt := func(d time.Duration) *store.Grant { return grant(func(g *store.Grant) { g.RotatedAt = t0.Add(d) }) }
	for _, tc := range []struct {
		name  string
		r     func(*store.Rotation)
		grant *store.Grant
		want  error
	}{
		{"OK", nil, live, nil},
		{"AuthorizeRefuses", func(r *store.Rotation) { r.Authorize = deny }, live, errDeny},
		{"ErrInvalidTokenUnknown", nil, nil, store.ErrInvalidToken},
		{"ErrInvalidTokenAccessSecret", func(r *store.Rotation) { r.Refresh.Secret, r.Refresh.Kind = store.HashOf("a"), "" }, live, store.ErrInvalidToken},
		{"ErrInvalidTokenWrongKind", func(r *store.Rotation) { r.Refresh.Kind = store.KindAccess }, live, store.ErrInvalidToken},
		{"ErrInvalidTokenOtherPlugin", func(r *store.Rotation) { r.PluginID = "plu2" }, live, store.ErrInvalidToken},
		{"ErrInvalidTokenExpired", func(r *store.Rotation) { r.Now = t0.Add(time.Hour) }, live, store.ErrInvalidToken},
		{"ErrTokenReused", nil, rotatedAt(0), store.ErrTokenReused},
		{"WithinGrace", func(r *store.Rotation) { r.Grace = 2 * time.Minute }, rotatedAt(0), nil},
		{"ErrTokenReusedPastGrace", func(r *store.Rotation) { r.Grace = time.Minute }, rotatedAt(0), store.ErrTokenReused},
		{"ErrTokenReusedBeforeRotation", func(r *store.Rotation) { r.Grace = time.Hour }, rotatedAt(2 * time.Minute), store.ErrTokenReused},
		{"OKCarried", nil, grant(func(g *store.Grant) { g.CodeSecret = codeHash }), nil},
		{"ErrTokenReusedCarried", nil, grant(func(g *store.Grant) { g.RotatedAt, g.CodeSecret = t0, codeHash }), store.ErrTokenReused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			if tc.r != nil {
				tc.r(&r)
			}
			plan := Rotation(r, plugin, tc.grant)
			if !errors.Is(plan.Outcome, tc.want) || (tc.want == nil) != (plan.Outcome == nil) {
				t.Fatalf("outcome %v, want %v", plan.Outcome, tc.want)
			}
			switch {
			case tc.want == nil:
				if plan.Result.Key != r.New.Key || plan.Result.PluginID != "plu1" || plan.RevokeFamily != nil {
					t.Errorf("plan %+v: want the new grant, copied from the old", plan)
				}
				if tc.grant.RotatedAt.IsZero() && (len(plan.Changed) != 1 || plan.Grants[0].RotatedAt != r.Now) {
					t.Errorf("plan %+v: a first rotation ends the presented grant", plan)
				}
				if plan.Result.CodeSecret != tc.grant.CodeSecret {
					t.Errorf("new grant carries %x, want its family's code hash %x", plan.Result.CodeSecret, tc.grant.CodeSecret)
				}
			case errors.Is(tc.want, store.ErrTokenReused):
				if plan.RevokeFamily == nil || len(plan.Grants) > 0 {
					t.Errorf("plan %+v: want the family revoked and nothing else", plan)
				}
				if carried := tc.grant.CodeSecret != (store.Hash{}); carried != (plan.Tombstone != nil) ||
					carried && (plan.Tombstone.Secret != codeHash || plan.Tombstone.Key != TombstoneKey(tc.grant.Key.Family())) {
					t.Errorf("tombstone %+v: want one exactly when the grant carries its code's hash", plan.Tombstone)
				}
			default:
				if plan.Writes() {
					t.Errorf("a refusal writes %+v", plan)
				}
			}
		})
	}
}

// TestRevocation: what a revocation revokes.
func TestRevocation(t *testing.T) {
	access := store.Ref{Key: grant(nil).Key, Secret: store.HashOf("a"), Kind: store.KindAccess}
	refresh := store.Ref{Key: access.Key, Secret: store.HashOf("r"), Kind: store.KindRefresh}
	g := func(mod func(*store.Grant)) *store.Grant {
		return grant(func(x *store.Grant) {
			x.Key = access.Key
			if mod != nil {
				mod(x)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		r      store.Revocation
		plugin *store.Plugin
		grant  *store.Grant
		want   string // "family", "access", "nothing", or the refusal
	}{
		{"RefreshRevokesFamily", store.Revocation{Token: refresh}, nil, g(nil), "family"},
		{"RotatedRefreshRevokesFamily", store.Revocation{Token: refresh}, nil, g(func(x *store.Grant) { x.RotatedAt = t0 }), "family"},
		{"RefreshRevokesFamilyLeavingTombstone", store.Revocation{Token: refresh}, nil, g(func(x *store.Grant) { x.CodeSecret = codeHash }), "family+tombstone"},
		{"AccessAlone", store.Revocation{Token: access}, nil, g(nil), "access"},
		{"AccessAlreadyRevoked", store.Revocation{Token: access}, nil, g(func(x *store.Grant) { x.AccessRevokedAt = t0 }), "nothing"},
		{"Unknown", store.Revocation{Token: access}, nil, nil, "nothing"},
		{"WrongSpelling", store.Revocation{Token: store.Ref{Key: access.Key, Secret: refresh.Secret, Kind: store.KindAccess}}, nil, g(nil), "nothing"},
		{"OtherPluginLeftAlone", store.Revocation{Token: refresh, PluginID: "plu2", Authorize: allow}, &store.Plugin{ID: "plu2"}, g(nil), "nothing"},
		{"ErrNotFound", store.Revocation{Token: refresh, PluginID: "plu9", Authorize: allow}, nil, g(nil), store.ErrNotFound.Error()},
		{"AuthorizeRefuses", store.Revocation{Token: refresh, PluginID: "plu1", Authorize: deny}, plugin, g(nil), errDeny.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Now = t0.Add(time.Minute)
			plan := Revocation(tc.r, tc.plugin, tc.grant)
			var got string
			switch {
			case plan.Outcome != nil:
				got = plan.Outcome.Error()
			case plan.RevokeFamily != nil && plan.Tombstone != nil && plan.Tombstone.Secret == codeHash:
				got = "family+tombstone"
			case plan.RevokeFamily != nil && plan.Tombstone == nil:
				got = "family"
			case len(plan.Grants) == 1 && !plan.Grants[0].AccessRevokedAt.IsZero():
				got = "access"
			case !plan.Writes():
				got = "nothing"
			}
			if got != tc.want {
				t.Errorf("got %q (plan %+v), want %q", got, plan, tc.want)
			}
		})
	}
}

// TestSweep: what becomes of a record whose expiry entry came due.
func TestSweep(t *testing.T) {
	unredeemed := codec.EncodeAuthCode(code(nil))
	redeemed := codec.EncodeAuthCode(code(func(c *store.AuthCode) { c.RedeemedAt = t0 }))
	g := codec.EncodeGrant(grant(nil))
	family := func(latest time.Time) func() (time.Time, error) {
		return func() (time.Time, error) { return latest, nil }
	}
	noFamily := func() (time.Time, error) {
		t.Error("the family was read for a record that needs none")
		return time.Time{}, nil
	}
	for _, tc := range []struct {
		name    string
		isGrant bool
		raw     []byte
		now     time.Time
		family  func() (time.Time, error)
		want    Due
		next    time.Time
	}{
		{"UnredeemedCodeExpired", false, unredeemed, t0.Add(5 * time.Minute), noFamily, DueDelete, time.Time{}},
		{"CodeNotYetExpired", false, unredeemed, t0.Add(time.Minute), noFamily, DueMove, t0.Add(5 * time.Minute)},
		{"RedeemedCodeFamilyLives", false, redeemed, t0.Add(6 * time.Minute), family(t0.Add(time.Hour)), DueMove, t0.Add(time.Hour)},
		{"RedeemedCodeFamilyGone", false, redeemed, t0.Add(6 * time.Minute), family(time.Time{}), DueDelete, time.Time{}},
		{"RedeemedCodeFamilyExpired", false, redeemed, t0.Add(2 * time.Hour), family(t0.Add(time.Hour)), DueDelete, time.Time{}},
		{"GrantExpired", true, g, t0.Add(time.Hour), noFamily, DueDelete, time.Time{}},
		{"GrantLives", true, g, t0.Add(30 * time.Minute), noFamily, DueMove, t0.Add(time.Hour)},
		{"Undecodable", true, []byte{0xff}, t0, noFamily, DueUndecodable, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := Sweep(tc.isGrant, tc.raw, tc.now, tc.family)
			if err != nil || got != tc.want || !next.Equal(tc.next) {
				t.Errorf("Sweep = %v, %v, %v; want %v, %v", got, next, err, tc.want, tc.next)
			}
		})
	}
}

// TestOrphan: the pass after a plugin's deletion deletes its records only.
func TestOrphan(t *testing.T) {
	exists := func(id string) (bool, error) { return id == "plu1", nil }
	for _, tc := range []struct {
		name            string
		isGrant         bool
		raw             []byte
		gone, undecoded bool
	}{
		{"LivePluginsCode", false, codec.EncodeAuthCode(code(nil)), false, false},
		{"DeletedPluginsCode", false, codec.EncodeAuthCode(code(func(c *store.AuthCode) { c.PluginID = "plu2" })), true, false},
		{"DeletedPluginsGrant", true, codec.EncodeGrant(grant(func(g *store.Grant) { g.PluginID = "plu2" })), true, false},
		{"Undecodable", false, []byte{0xff}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gone, bad, err := Orphan(tc.isGrant, tc.raw, exists)
			if err != nil || gone != tc.gone || bad != tc.undecoded {
				t.Errorf("Orphan = %v, %v, %v; want %v, %v", gone, bad, err, tc.gone, tc.undecoded)
			}
		})
	}
}

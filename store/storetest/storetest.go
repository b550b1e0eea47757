// Package storetest is the conformance suite of plugintoken's stores: one
// table of tests that every backend (bbolt in package store, etcd in
// package etcdstore) must pass, so that they keep one contract. It also
// has the fixtures those tests share.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

var ctx = context.Background()

// T0 is the fixtures' clock: codes are issued at T0 and live five minutes,
// tokens ten.
var T0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Ref is the Ref of a code or token named name in a test.
func Ref(name string) store.Ref {
	h := sha256.Sum256([]byte("key:" + name))
	var k store.Key
	copy(k[:], h[:])
	return store.Ref{Key: k, Secret: store.HashOf(name)}
}

// AccessRef is the Ref that presents a grant's access token.
func AccessRef(g store.Grant) store.Ref { return store.Ref{Key: g.Key, Secret: g.AccessSecret} }

// RefreshRef is the Ref that presents a grant's refresh token.
func RefreshRef(g store.Grant) store.Ref { return store.Ref{Key: g.Key, Secret: g.RefreshSecret} }

// Refs are the Refs of both tokens of grants.
func Refs(grants ...store.Grant) []store.Ref {
	var out []store.Ref
	for _, g := range grants {
		out = append(out, AccessRef(g), RefreshRef(g))
	}
	return out
}

// MustCreatePlugin stores plugin id with secret "s3cret" and scope table|read.
func MustCreatePlugin(tb testing.TB, db store.Store, id string) {
	tb.Helper()
	err := db.CreatePlugin(ctx, store.Plugin{ID: id, Name: "Chart", SecretHash: store.HashOf("s3cret"),
		SecretHint: "cret", Scopes: []string{"table|read"}, CreatedAt: T0, UpdatedAt: T0})
	if err != nil {
		tb.Fatalf("CreatePlugin: %v", err)
	}
}

// MustCreateCode stores a code for the plugin and base, issued at T0 and
// valid for five minutes.
func MustCreateCode(tb testing.TB, db store.Store, code, plugin, base string) {
	tb.Helper()
	err := db.CreateAuthCode(ctx, store.AuthCode{Key: Ref(code).Key, Secret: Ref(code).Secret, PluginID: plugin, BaseID: base,
		IssuedAt: T0, ExpiresAt: T0.Add(5 * time.Minute)})
	if err != nil {
		tb.Fatalf("CreateAuthCode: %v", err)
	}
}

// Seed stores plugin "plu1" and code "code1" for base "bse1".
func Seed(tb testing.TB, db store.Store) {
	tb.Helper()
	MustCreatePlugin(tb, db, "plu1")
	MustCreateCode(tb, db, "code1", "plu1", "bse1")
}

// Redemption asks for code1 of plu1 on bse1 at T0+1m, minting a grant whose
// secrets are named after suffix.
func Redemption(suffix string) store.Redemption { return RedemptionOf("code1", suffix) }

// RedemptionAt is Redemption at now instead of T0+1m.
func RedemptionAt(suffix string, now time.Time) store.Redemption {
	r := Redemption(suffix)
	r.Now = now
	return r
}

// RedemptionOf is Redemption for another code.
func RedemptionOf(code, suffix string) store.Redemption {
	return store.Redemption{
		PluginID: "plu1", BaseID: "bse1", Code: Ref(code), Now: T0.Add(time.Minute),
		Authorize: func(store.Plugin) error { return nil },
		Grant: store.Grant{Key: store.NewGrantKey(Ref(code).Key),
			AccessSecret: store.HashOf("access" + suffix), RefreshSecret: store.HashOf("refresh" + suffix),
			PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"}, IssuedAt: T0,
			AccessExpiresAt: T0.Add(10 * time.Minute), RefreshExpiresAt: T0.Add(10 * time.Minute)},
	}
}

// Rotation rotates the refresh token from into a grant whose secrets are
// named after suffix, at now.
func Rotation(from store.Ref, suffix string, now time.Time) store.Rotation {
	return store.Rotation{
		PluginID: "plu1", Refresh: from, Now: now,
		Authorize: func(store.Plugin) error { return nil },
		New: store.Grant{Key: store.NewGrantKey(from.Key),
			AccessSecret: store.HashOf("access" + suffix), RefreshSecret: store.HashOf("refresh" + suffix),
			IssuedAt: now, AccessExpiresAt: now.Add(10 * time.Minute), RefreshExpiresAt: now.Add(time.Hour)},
	}
}

// Live reports whether a token is stored and active at now.
func Live(t testing.TB, db store.Store, h store.Ref, now time.Time) bool {
	t.Helper()
	tok, err := db.Token(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return tok.Active(now)
}

// redeemed opens a store, seeds it and redeems code1.
func redeemed(t *testing.T, open func(testing.TB) store.Store) (store.Store, store.Redemption) {
	t.Helper()
	db := open(t)
	Seed(t, db)
	r := Redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	return db, r
}

// testSweep checks what the sweeper removes and when.
func testSweep(t *testing.T, open func(testing.TB) store.Store) {
	db, r := redeemed(t, open)
	MustCreateCode(t, db, "code2", "plu1", "bse1") // unused, expires T0+5m
	if res, err := db.Sweep(ctx, T0.Add(time.Minute)); err != nil || res.Codes != 0 || res.Grants != 0 || len(res.Undecodable) != 0 {
		t.Fatalf("early sweep: %+v, %v", res, err)
	}
	// At T0+6m both codes are past expiry and the tokens (10m) are not:
	// the unused code goes; the redeemed one was consumed, and its grant,
	// which carries its hash, recognises its replay for as long as it is
	// stored.
	res, err := db.Sweep(ctx, T0.Add(6*time.Minute))
	if err != nil || res.Codes != 1 || res.Grants != 0 {
		t.Fatalf("sweep at 6m: %+v, %v; want the unused code alone removed", res, err)
	}
	// At T0+11m the tokens have expired: the grant goes, and with it what
	// recognised the code; the code is now unknown, no longer a replay.
	res, err = db.Sweep(ctx, T0.Add(11*time.Minute))
	if err != nil || res.Grants != 1 || res.Codes != 0 {
		t.Fatalf("sweep at 11m: %+v, %v; want the grant removed", res, err)
	}
	if err := db.RedeemAuthCode(ctx, RedemptionAt("b", T0.Add(11*time.Minute))); !errors.Is(err, store.ErrInvalidCode) {
		t.Errorf("code after its tombstone was swept: err = %v, want ErrInvalidCode", err)
	}
	if _, err := db.Token(ctx, AccessRef(r.Grant)); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired token kept")
	}
	t.Run("ReplayAfterCodeExpiryRevokes", func(t *testing.T) {
		// The sweep that runs after the code's expiry keeps what
		// recognises its replay (the grant, which carries the code's
		// hash): a replay then still revokes the tokens it gave.
		db, r := redeemed(t, open)
		if _, err := db.Sweep(ctx, T0.Add(6*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.RedeemAuthCode(ctx, RedemptionAt("b", T0.Add(6*time.Minute))); !errors.Is(err, store.ErrCodeReplayed) {
			t.Fatalf("replay after the code's expiry and a sweep: %v, want ErrCodeReplayed", err)
		}
		if Live(t, db, AccessRef(r.Grant), T0.Add(6*time.Minute)) {
			t.Error("the replay left the code's token active")
		}
	})
	t.Run("ReplayAfterFirstGrantSwept", func(t *testing.T) {
		// The code's first grant expired and was swept; the grant rotated
		// from it lives and carries the code's hash: a replay still
		// revokes it.
		db, r := redeemed(t, open)
		second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", T0.Add(2*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		later := T0.Add(11 * time.Minute)
		if res, err := db.Sweep(ctx, later); err != nil || res.Grants != 1 {
			t.Fatalf("sweep: %+v, %v; want the first grant removed", res, err)
		}
		if err := db.RedeemAuthCode(ctx, RedemptionAt("z", later)); !errors.Is(err, store.ErrCodeReplayed) {
			t.Fatalf("replay: %v, want ErrCodeReplayed", err)
		}
		if Live(t, db, RefreshRef(second), later) {
			t.Error("the replay left the rotated grant's refresh token active")
		}
	})
	t.Run("OrphansOfDeletedPlugin", func(t *testing.T) {
		db, _ := redeemed(t, open)
		MustCreateCode(t, db, "code2", "plu1", "bse1")
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		res, err := db.Sweep(ctx, T0)
		if err != nil || res.Codes != 1 || res.Grants != 1 {
			t.Fatalf("sweep: %+v, %v", res, err)
		}
	})
}

// Run runs the conformance suite against a backend. open returns a fresh,
// empty store that is closed when its test ends.
func Run(t *testing.T, open func(testing.TB) store.Store) {
	for name, test := range map[string]func(*testing.T, func(testing.TB) store.Store){
		"Plugins": testPlugins, "RedeemAuthCode": testRedeemAuthCode, "RedeemAuthCodeConcurrent": testRedeemAuthCodeConcurrent,
		"TokenOfDeletedPlugin": testTokenOfDeletedPlugin, "RotateRefreshToken": testRotateRefreshToken,
		"RefreshReuse": testRefreshReuse, "CodeReplayRevokesFamily": testCodeReplayRevokesFamily,
		"ReplayAfterRevocation": testReplayAfterRevocation,
		"RevokeToken":           testRevokeToken, "WritesSeenAtOnce": testCacheFollowsWrites, "NoStaleReadAfterRevoke": testCacheNoStaleFill,
		"Sweep": testSweep, "RotationRace": testRotationRace, "ReuseRule": testReuseRule,
		"RevokeRotatedRefresh": testRevokeRotatedRefresh, "Subject": testSubject,
		"OneSpellingPerCredential": testOneSpelling,
	} {
		t.Run(name, func(t *testing.T) { test(t, open) })
	}
}

func testPlugins(t *testing.T, open func(testing.TB) store.Store) {
	db := open(t)
	MustCreatePlugin(t, db, "plu1")

	if err := db.CreatePlugin(ctx, store.Plugin{ID: "plu1"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreatePlugin twice: err = %v, want ErrExists", err)
	}
	p, err := db.Plugin(ctx, "plu1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Chart" || p.SecretHash != store.HashOf("s3cret") || !p.CreatedAt.Equal(T0) {
		t.Errorf("Plugin = %+v", p)
	}
	if _, err := db.Plugin(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Plugin(nope): err = %v, want ErrNotFound", err)
	}

	if err := db.SetPluginSecret(ctx, "plu1", store.HashOf("new"), "new", T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.Plugin(ctx, "plu1"); p.SecretHash != store.HashOf("new") || !p.UpdatedAt.Equal(T0.Add(time.Hour)) {
		t.Errorf("after SetPluginSecret: %+v", p)
	}
	if err := db.SetPluginSecret(ctx, "nope", store.Hash{}, "", T0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPluginSecret(nope): err = %v, want ErrNotFound", err)
	}

	if err := db.DeletePlugin(ctx, "plu1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePlugin(ctx, "plu1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePlugin twice: err = %v, want ErrNotFound", err)
	}
	if err := db.CreateAuthCode(ctx, store.AuthCode{Key: Ref("c").Key, PluginID: "plu1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAuthCode for deleted plugin: err = %v, want ErrNotFound", err)
	}
}

func testRedeemAuthCode(t *testing.T, open func(testing.TB) store.Store) {
	errNo := errors.New("refused")
	tests := []struct {
		name   string
		change func(db store.Store, r *store.Redemption)
		want   error
	}{
		{"OK", func(store.Store, *store.Redemption) {}, nil},
		{"ErrInvalidCodeUnknown", func(_ store.Store, r *store.Redemption) { *r = RedemptionOf("other", "a") }, store.ErrInvalidCode},
		{"ErrInvalidCodeWrongSecret", func(_ store.Store, r *store.Redemption) { r.Code.Secret = store.HashOf("guess") }, store.ErrInvalidCode},
		{"ErrInvalidCodeExpired", func(_ store.Store, r *store.Redemption) { r.Now = T0.Add(5 * time.Minute) }, store.ErrInvalidCode},
		{"ErrInvalidCodeOtherBase", func(_ store.Store, r *store.Redemption) { r.BaseID = "bse2" }, store.ErrInvalidCode},
		{"ErrInvalidCodeOtherPlugin", func(db store.Store, r *store.Redemption) {
			MustCreatePlugin(t, db, "plu2")
			r.PluginID = "plu2"
		}, store.ErrInvalidCode},
		{"ErrNotFoundPlugin", func(db store.Store, r *store.Redemption) { _ = db.DeletePlugin(ctx, "plu1") }, store.ErrNotFound},
		{"ErrAuthorize", func(_ store.Store, r *store.Redemption) {
			r.Authorize = func(store.Plugin) error { return errNo }
		}, errNo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t)
			Seed(t, db)
			r := Redemption("a")
			tt.change(db, &r)
			err := db.RedeemAuthCode(ctx, r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RedeemAuthCode: err = %v, want %v", err, tt.want)
			}
			_, terr := db.Token(ctx, AccessRef(r.Grant))
			if tt.want != nil {
				if !errors.Is(terr, store.ErrNotFound) {
					t.Errorf("after a failed redemption the access token exists (err = %v)", terr)
				}
				// A failed attempt leaves the code usable by its owner.
				if tt.want != store.ErrNotFound {
					if err := db.RedeemAuthCode(ctx, Redemption("b")); err != nil {
						t.Errorf("code not usable after a failed attempt: %v", err)
					}
				}
				return
			}
			access, err := db.Token(ctx, AccessRef(r.Grant))
			if err != nil {
				t.Fatalf("Token(access): %v", err)
			}
			refresh, err := db.Token(ctx, RefreshRef(r.Grant))
			if err != nil {
				t.Fatalf("Token(refresh): %v", err)
			}
			if access.Kind != store.KindAccess || refresh.Kind != store.KindRefresh {
				t.Errorf("kinds = %s, %s", access.Kind, refresh.Kind)
			}
			if access.Key.Family() != Ref("code1").Key.Family() || access.Key != refresh.Key {
				t.Errorf("family links wrong: access %+v refresh %+v", access, refresh)
			}
			if err := db.RedeemAuthCode(ctx, Redemption("b")); !errors.Is(err, store.ErrCodeReplayed) {
				t.Errorf("second redemption: err = %v, want ErrCodeReplayed", err)
			}
		})
	}
}

func testRedeemAuthCodeConcurrent(t *testing.T, open func(testing.TB) store.Store) {
	db := open(t)
	Seed(t, db)
	const n = 50
	var ok, invalid atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := db.RedeemAuthCode(ctx, Redemption(string(rune('A'+i))))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrCodeReplayed):
				invalid.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || invalid.Load() != n-1 {
		t.Errorf("successes = %d, invalid = %d; want 1 and %d", ok.Load(), invalid.Load(), n-1)
	}
}

func testTokenOfDeletedPlugin(t *testing.T, open func(testing.TB) store.Store) {
	db := open(t)
	Seed(t, db)
	r := Redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePlugin(ctx, "plu1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Token(ctx, AccessRef(r.Grant)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of a deleted plugin: err = %v, want ErrNotFound", err)
	}
}

func testRotateRefreshToken(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	t.Run("OK", func(t *testing.T) {
		db, r := redeemed(t, open)
		g, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		if g.BaseID != "bse1" || g.PluginID != "plu1" || len(g.Scopes) != 1 || g.Key.Family() != r.Code.Key.Family() {
			t.Errorf("new grant: %+v", g)
		}
		if Live(t, db, AccessRef(r.Grant), now) || Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("old pair still active after rotation")
		}
		access, _ := db.Token(ctx, AccessRef(g))
		refresh, _ := db.Token(ctx, RefreshRef(g))
		if access == nil || refresh == nil || access.Kind != store.KindAccess || refresh.Kind != store.KindRefresh ||
			!access.Active(now) || !refresh.Active(now) {
			t.Errorf("new pair not active: %+v / %+v", access, refresh)
		}
	})
	errNo := errors.New("refused")
	for name, tc := range map[string]struct {
		change func(r store.Redemption, rot *store.Rotation)
		want   error
	}{
		"ErrInvalidTokenUnknown": {func(_ store.Redemption, rot *store.Rotation) { *rot = Rotation(Ref("nope"), "b", rot.Now) }, store.ErrInvalidToken},
		"ErrInvalidTokenAccess": {func(r store.Redemption, rot *store.Rotation) {
			*rot = Rotation(AccessRef(r.Grant), "b", rot.Now)
		}, store.ErrInvalidToken},
		"ErrInvalidTokenExpired": {func(_ store.Redemption, rot *store.Rotation) { rot.Now = T0.Add(10 * time.Minute) }, store.ErrInvalidToken},
		"ErrNotFoundPlugin":      {func(_ store.Redemption, rot *store.Rotation) { rot.PluginID = "plu9" }, store.ErrNotFound},
		"ErrAuthorize": {func(_ store.Redemption, rot *store.Rotation) {
			rot.Authorize = func(store.Plugin) error { return errNo }
		}, errNo},
	} {
		t.Run(name, func(t *testing.T) {
			db, r := redeemed(t, open)
			rot := Rotation(RefreshRef(r.Grant), "b", now)
			tc.change(r, &rot)
			if _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A failed attempt changes nothing.
			if !Live(t, db, AccessRef(r.Grant), now) || !Live(t, db, RefreshRef(r.Grant), now) {
				t.Error("pair changed by a failed rotation")
			}
		})
	}
	t.Run("ErrInvalidTokenOtherPlugin", func(t *testing.T) {
		db, r := redeemed(t, open)
		MustCreatePlugin(t, db, "plu2")
		rot := Rotation(RefreshRef(r.Grant), "b", now)
		rot.PluginID = "plu2"
		if _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
		if !Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("another plugin's attempt changed the token")
		}
	})
	t.Run("ErrOtherFamily", func(t *testing.T) {
		db, r := redeemed(t, open)
		rot := Rotation(RefreshRef(r.Grant), "b", now)
		rot.New.Key = store.NewGrantKey(Ref("elsewhere").Key)
		if _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("a new grant outside the family: err = %v, want ErrInvalidArgument", err)
		}
		if !Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("a refused rotation changed the token")
		}
	})
}

func testRefreshReuse(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	t.Run("ErrTokenReusedRevokesFamily", func(t *testing.T) {
		db, r := redeemed(t, open)
		second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		third, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(second), "c", now))
		if err != nil {
			t.Fatal(err)
		}
		MustCreateCode(t, db, "code2", "plu1", "bse1")
		other := RedemptionOf("code2", "o")
		if err := db.RedeemAuthCode(ctx, other); err != nil {
			t.Fatal(err)
		}
		// The first refresh token comes back: the family dies.
		if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "d", now)); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse: err = %v, want ErrTokenReused", err)
		}
		for _, h := range Refs(second, third) {
			if Live(t, db, h, now) {
				t.Errorf("token %s survived the family revocation", h.Key)
			}
		}
		for _, h := range Refs(other.Grant) {
			if !Live(t, db, h, now) {
				t.Errorf("token %s of another family was revoked", h.Key)
			}
		}
	})
	t.Run("GracePeriod", func(t *testing.T) {
		db, r := redeemed(t, open)
		second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		retry := Rotation(RefreshRef(r.Grant), "c", now.Add(5*time.Second))
		retry.Grace = 10 * time.Second
		third, err := db.RotateRefreshToken(ctx, retry)
		if err != nil {
			t.Fatalf("retry within grace: %v", err)
		}
		for _, h := range Refs(second, third) {
			if !Live(t, db, h, now) {
				t.Errorf("retry within grace revoked %s", h.Key)
			}
		}
		late := Rotation(RefreshRef(r.Grant), "d", now.Add(10*time.Second))
		late.Grace = 10 * time.Second
		if _, err := db.RotateRefreshToken(ctx, late); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse after grace: err = %v, want ErrTokenReused", err)
		}
		for _, h := range Refs(second, third) {
			if Live(t, db, h, now) {
				t.Errorf("reuse after grace left %s alive", h.Key)
			}
		}
	})
}

// testReplayAfterRevocation: once a family is revoked (its refresh token
// revoked or reused, its code replayed), none of its grants is left to
// carry its code's hash, and a replay of the code is still a replay, each
// time, until the sweep after the family's deadline forgets the code.
func testReplayAfterRevocation(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	for name, revoke := range map[string]func(store.Store, store.Redemption) error{
		"RefreshRevoked": func(db store.Store, r store.Redemption) error {
			return db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: now})
		},
		"RefreshReused": func(db store.Store, r store.Redemption) error {
			if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now)); err != nil {
				return err
			}
			if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "c", now)); !errors.Is(err, store.ErrTokenReused) {
				return fmt.Errorf("reuse: %v, want ErrTokenReused", err)
			}
			return nil
		},
		"CodeReplayed": func(db store.Store, r store.Redemption) error {
			if err := db.RedeemAuthCode(ctx, Redemption("z")); !errors.Is(err, store.ErrCodeReplayed) {
				return fmt.Errorf("first replay: %v, want ErrCodeReplayed", err)
			}
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			db, r := redeemed(t, open)
			if err := revoke(db, r); err != nil {
				t.Fatal(err)
			}
			if Live(t, db, AccessRef(r.Grant), now) {
				t.Fatal("the family's token survived its revocation")
			}
			for i := range 2 {
				replay := RedemptionAt(fmt.Sprint("y", i), now)
				if err := db.RedeemAuthCode(ctx, replay); !errors.Is(err, store.ErrCodeReplayed) {
					t.Fatalf("replay %d after the revocation: %v, want ErrCodeReplayed", i, err)
				}
				if _, err := db.Token(ctx, AccessRef(replay.Grant)); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("replay %d stored a token: %v", i, err)
				}
			}
			later := T0.Add(48 * time.Hour)
			if res, err := db.Sweep(ctx, later); err != nil || res.Codes != 1 {
				t.Fatalf("sweep after the family's deadline: %+v, %v; want the code's tombstone removed", res, err)
			}
			if err := db.RedeemAuthCode(ctx, RedemptionAt("x", later)); !errors.Is(err, store.ErrInvalidCode) {
				t.Errorf("replay once the tombstone was swept: %v, want ErrInvalidCode", err)
			}
		})
	}
}

func testCodeReplayRevokesFamily(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	db, r := redeemed(t, open)
	second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
	if err != nil {
		t.Fatal(err)
	}
	replay := Redemption("z")
	if err := db.RedeemAuthCode(ctx, replay); !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("replay: err = %v, want ErrCodeReplayed", err)
	}
	for _, h := range Refs(r.Grant, second, replay.Grant) {
		if _, err := db.Token(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %s survived the replay (err = %v)", h.Key, err)
		}
	}
}

// testOneSpelling: a Ref of one kind that carries the other kind's secret
// (a refresh token spelled with the access prefix, or the reverse) is
// unknown to every operation, before and after the right spelling was
// looked up (and cached).
func testOneSpelling(t *testing.T, open func(testing.TB) store.Store) {
	db, r := redeemed(t, open)
	now := T0.Add(time.Minute)
	access, refresh := AccessRef(r.Grant), RefreshRef(r.Grant)
	access.Kind, refresh.Kind = store.KindAccess, store.KindRefresh
	wrongAccess, wrongRefresh := refresh, access
	wrongAccess.Kind, wrongRefresh.Kind = store.KindAccess, store.KindRefresh
	for round := range 2 {
		for name, ref := range map[string]store.Ref{"RefreshAsAccess": wrongAccess, "AccessAsRefresh": wrongRefresh} {
			if _, err := db.Token(ctx, ref); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("round %d, Token(%s): %v, want ErrNotFound", round, name, err)
			}
		}
		if !Live(t, db, access, now) || !Live(t, db, refresh, now) {
			t.Fatal("the right spellings are not live")
		}
	}
	if _, err := db.RotateRefreshToken(ctx, Rotation(wrongRefresh, "x", now)); !errors.Is(err, store.ErrInvalidToken) {
		t.Errorf("rotation of an access secret spelled as a refresh token: %v, want ErrInvalidToken", err)
	}
	for _, ref := range []store.Ref{wrongAccess, wrongRefresh} {
		if err := db.RevokeToken(ctx, store.Revocation{Token: ref, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	if !Live(t, db, access, now) || !Live(t, db, refresh, now) {
		t.Error("a revocation by the wrong spelling revoked a token")
	}
}

func testRevokeToken(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	t.Run("RefreshTakesAccess", func(t *testing.T) {
		db, r := redeemed(t, open)
		if err := db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: T0}); err != nil {
			t.Fatal(err)
		}
		if Live(t, db, RefreshRef(r.Grant), now) || Live(t, db, AccessRef(r.Grant), now) {
			t.Error("revoking the refresh token left a token alive")
		}
	})
	t.Run("AccessLeavesRefresh", func(t *testing.T) {
		db, r := redeemed(t, open)
		if err := db.RevokeToken(ctx, store.Revocation{Token: AccessRef(r.Grant), PluginID: "plu1", Now: T0}); err != nil {
			t.Fatal(err)
		}
		if Live(t, db, AccessRef(r.Grant), now) || !Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("revoking the access token: wrong survivors")
		}
		if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now)); err != nil {
			t.Errorf("refresh after access revocation: %v", err)
		}
	})
	t.Run("OtherPluginIgnored", func(t *testing.T) {
		db, r := redeemed(t, open)
		MustCreatePlugin(t, db, "plu2")
		if err := db.RevokeToken(ctx, store.Revocation{Token: AccessRef(r.Grant), PluginID: "plu2", Now: T0}); err != nil {
			t.Fatal(err)
		}
		if !Live(t, db, AccessRef(r.Grant), now) {
			t.Error("another plugin revoked the token")
		}
	})
	t.Run("UnknownIsNoError", func(t *testing.T) {
		db, _ := redeemed(t, open)
		if err := db.RevokeToken(ctx, store.Revocation{Token: Ref("nope"), Now: T0}); err != nil {
			t.Error(err)
		}
	})
	t.Run("ErrNotFoundPlugin", func(t *testing.T) {
		db, r := redeemed(t, open)
		if err := db.RevokeToken(ctx, store.Revocation{Token: AccessRef(r.Grant), PluginID: "plu9", Now: T0}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v", err)
		}
	})
}

// testCacheFollowsWrites looks tokens up (so that they are cached) before
// every kind of write that ends them, and checks that the lookup after the
// write sees the change.
func testCacheFollowsWrites(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	warm := func(t *testing.T, db store.Store, refs ...store.Ref) {
		t.Helper()
		for _, r := range refs {
			if !Live(t, db, r, now) {
				t.Fatalf("token %s not live before the write", r.Key)
			}
		}
	}
	t.Run("Revoke", func(t *testing.T) {
		db, r := redeemed(t, open)
		warm(t, db, AccessRef(r.Grant), RefreshRef(r.Grant))
		if err := db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: T0}); err != nil {
			t.Fatal(err)
		}
		if Live(t, db, AccessRef(r.Grant), now) || Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("revoked tokens still served from the cache")
		}
	})
	t.Run("Rotate", func(t *testing.T) {
		db, r := redeemed(t, open)
		warm(t, db, AccessRef(r.Grant), RefreshRef(r.Grant))
		if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now)); err != nil {
			t.Fatal(err)
		}
		if Live(t, db, AccessRef(r.Grant), now) || Live(t, db, RefreshRef(r.Grant), now) {
			t.Error("rotated pair still served from the cache")
		}
	})
	t.Run("Replay", func(t *testing.T) {
		db, r := redeemed(t, open)
		warm(t, db, AccessRef(r.Grant))
		_ = db.RedeemAuthCode(ctx, Redemption("z"))
		if Live(t, db, AccessRef(r.Grant), now) {
			t.Error("token of a replayed code still served from the cache")
		}
	})
	t.Run("Reuse", func(t *testing.T) {
		db, r := redeemed(t, open)
		second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		warm(t, db, AccessRef(second))
		_, _ = db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "c", now))
		if Live(t, db, AccessRef(second), now) {
			t.Error("token of a reused family still served from the cache")
		}
	})
	t.Run("DeletePlugin", func(t *testing.T) {
		db, r := redeemed(t, open)
		warm(t, db, AccessRef(r.Grant))
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		if Live(t, db, AccessRef(r.Grant), now) {
			t.Error("token of a deleted plugin still served from the cache")
		}
	})
	t.Run("WrongSecretMisses", func(t *testing.T) {
		db, r := redeemed(t, open)
		warm(t, db, AccessRef(r.Grant))
		guess := AccessRef(r.Grant)
		guess.Secret = store.HashOf("guess")
		if _, err := db.Token(ctx, guess); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cached token found with a wrong secret: %v", err)
		}
	})
}

// testCacheNoStaleFill revokes a token while other goroutines keep looking
// it up: once RevokeToken has returned, no lookup may find it, even one
// that read the store before the revocation and would fill a cache after.
// (On a backend without a cache, it checks that reads are not served from
// a stale replica.)
func testCacheNoStaleFill(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	for range 20 {
		db, r := redeemed(t, open)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var lookups atomic.Int64
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = db.Token(ctx, AccessRef(r.Grant))
						lookups.Add(1)
					}
				}
			})
		}
		for lookups.Load() < 16 { // the readers are under way
			runtime.Gosched()
		}
		if err := db.RevokeToken(ctx, store.Revocation{Token: AccessRef(r.Grant), Now: T0}); err != nil {
			t.Fatal(err)
		}
		// A reader that read before the revocation and fills a cache
		// after it is still under way: it finishes before the last check
		// below, which is the one that catches a stale fill.
		for range 20 {
			if Live(t, db, AccessRef(r.Grant), now) {
				t.Fatal("revoked token found after RevokeToken returned")
			}
		}
		close(stop)
		wg.Wait()
		if Live(t, db, AccessRef(r.Grant), now) {
			t.Fatal("revoked token found after the readers stopped")
		}
	}
}

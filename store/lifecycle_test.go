package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// redeemed seeds a store and redeems code1 into the pair of redemption("a").
func redeemed(t *testing.T) (*store.DB, store.Redemption) {
	t.Helper()
	db := MustOpen(t)
	seed(t, db)
	r := redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	return db, r
}

// rotation rotates the refresh token from into a grant whose secrets are
// named after suffix, at now.
func rotation(from store.Ref, suffix string, now time.Time) store.Rotation {
	return store.Rotation{
		PluginID: "plu1", Refresh: from, Now: now,
		Authorize: func(store.Plugin) error { return nil },
		New: store.Grant{Key: store.NewGrantKey(from.Key),
			AccessSecret: store.HashOf("access" + suffix), RefreshSecret: store.HashOf("refresh" + suffix),
			IssuedAt: now, AccessExpiresAt: now.Add(10 * time.Minute), RefreshExpiresAt: now.Add(time.Hour)},
	}
}

// live reports whether a token is stored and active at now.
func live(t *testing.T, db *store.DB, h store.Ref, now time.Time) bool {
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

func TestRotateRefreshToken(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	t.Run("OK", func(t *testing.T) {
		db, r := redeemed(t)
		g, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		if g.BaseID != "bse1" || g.PluginID != "plu1" || len(g.Scopes) != 1 || g.Key.Family() != r.Code.Key.Family() {
			t.Errorf("new grant: %+v", g)
		}
		if live(t, db, accessRef(r.Grant), now) || live(t, db, refreshRef(r.Grant), now) {
			t.Error("old pair still active after rotation")
		}
		access, _ := db.Token(ctx, accessRef(g))
		refresh, _ := db.Token(ctx, refreshRef(g))
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
		"ErrInvalidTokenUnknown": {func(_ store.Redemption, rot *store.Rotation) { *rot = rotation(ref("nope"), "b", rot.Now) }, store.ErrInvalidToken},
		"ErrInvalidTokenAccess": {func(r store.Redemption, rot *store.Rotation) {
			*rot = rotation(accessRef(r.Grant), "b", rot.Now)
		}, store.ErrInvalidToken},
		"ErrInvalidTokenExpired": {func(_ store.Redemption, rot *store.Rotation) { rot.Now = t0.Add(10 * time.Minute) }, store.ErrInvalidToken},
		"ErrNotFoundPlugin":      {func(_ store.Redemption, rot *store.Rotation) { rot.PluginID = "plu9" }, store.ErrNotFound},
		"ErrAuthorize": {func(_ store.Redemption, rot *store.Rotation) {
			rot.Authorize = func(store.Plugin) error { return errNo }
		}, errNo},
	} {
		t.Run(name, func(t *testing.T) {
			db, r := redeemed(t)
			rot := rotation(refreshRef(r.Grant), "b", now)
			tc.change(r, &rot)
			if _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A failed attempt changes nothing.
			if !live(t, db, accessRef(r.Grant), now) || !live(t, db, refreshRef(r.Grant), now) {
				t.Error("pair changed by a failed rotation")
			}
		})
	}
	t.Run("ErrInvalidTokenOtherPlugin", func(t *testing.T) {
		db, r := redeemed(t)
		mustCreatePlugin(t, db, "plu2")
		rot := rotation(refreshRef(r.Grant), "b", now)
		rot.PluginID = "plu2"
		if _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
		if !live(t, db, refreshRef(r.Grant), now) {
			t.Error("another plugin's attempt changed the token")
		}
	})
	t.Run("ErrOtherFamily", func(t *testing.T) {
		db, r := redeemed(t)
		rot := rotation(refreshRef(r.Grant), "b", now)
		rot.New.Key = store.NewGrantKey(ref("elsewhere").Key)
		if _, err := db.RotateRefreshToken(ctx, rot); err == nil {
			t.Fatal("a new grant outside the family was accepted")
		}
	})
}

// refs are the Refs of both tokens of grants.
func refs(grants ...store.Grant) []store.Ref {
	var out []store.Ref
	for _, g := range grants {
		out = append(out, accessRef(g), refreshRef(g))
	}
	return out
}

func TestRefreshReuse(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	t.Run("ErrTokenReusedRevokesFamily", func(t *testing.T) {
		db, r := redeemed(t)
		second, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		third, err := db.RotateRefreshToken(ctx, rotation(refreshRef(second), "c", now))
		if err != nil {
			t.Fatal(err)
		}
		mustCreateCode(t, db, "code2", "plu1", "bse1")
		other := redemptionOf("code2", "o")
		if err := db.RedeemAuthCode(ctx, other); err != nil {
			t.Fatal(err)
		}
		// The first refresh token comes back: the family dies.
		if _, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "d", now)); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse: err = %v, want ErrTokenReused", err)
		}
		for _, h := range refs(second, third) {
			if live(t, db, h, now) {
				t.Errorf("token %s survived the family revocation", h.Key)
			}
		}
		for _, h := range refs(other.Grant) {
			if !live(t, db, h, now) {
				t.Errorf("token %s of another family was revoked", h.Key)
			}
		}
	})
	t.Run("GracePeriod", func(t *testing.T) {
		db, r := redeemed(t)
		second, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		retry := rotation(refreshRef(r.Grant), "c", now.Add(5*time.Second))
		retry.Grace = 10 * time.Second
		third, err := db.RotateRefreshToken(ctx, retry)
		if err != nil {
			t.Fatalf("retry within grace: %v", err)
		}
		for _, h := range refs(second, third) {
			if !live(t, db, h, now) {
				t.Errorf("retry within grace revoked %s", h.Key)
			}
		}
		late := rotation(refreshRef(r.Grant), "d", now.Add(10*time.Second))
		late.Grace = 10 * time.Second
		if _, err := db.RotateRefreshToken(ctx, late); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse after grace: err = %v, want ErrTokenReused", err)
		}
		for _, h := range refs(second, third) {
			if live(t, db, h, now) {
				t.Errorf("reuse after grace left %s alive", h.Key)
			}
		}
	})
}

func TestCodeReplayRevokesFamily(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	db, r := redeemed(t)
	second, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now))
	if err != nil {
		t.Fatal(err)
	}
	replay := redemption("z")
	if err := db.RedeemAuthCode(ctx, replay); !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("replay: err = %v, want ErrCodeReplayed", err)
	}
	for _, h := range refs(r.Grant, second, replay.Grant) {
		if _, err := db.Token(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %s survived the replay (err = %v)", h.Key, err)
		}
	}
}

func TestRevokeToken(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	t.Run("RefreshTakesAccess", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: refreshRef(r.Grant)}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refreshRef(r.Grant), now) || live(t, db, accessRef(r.Grant), now) {
			t.Error("revoking the refresh token left a token alive")
		}
	})
	t.Run("AccessLeavesRefresh", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: accessRef(r.Grant), PluginID: "plu1"}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, accessRef(r.Grant), now) || !live(t, db, refreshRef(r.Grant), now) {
			t.Error("revoking the access token: wrong survivors")
		}
		if _, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now)); err != nil {
			t.Errorf("refresh after access revocation: %v", err)
		}
	})
	t.Run("OtherPluginIgnored", func(t *testing.T) {
		db, r := redeemed(t)
		mustCreatePlugin(t, db, "plu2")
		if err := db.RevokeToken(ctx, store.Revocation{Token: accessRef(r.Grant), PluginID: "plu2"}); err != nil {
			t.Fatal(err)
		}
		if !live(t, db, accessRef(r.Grant), now) {
			t.Error("another plugin revoked the token")
		}
	})
	t.Run("UnknownIsNoError", func(t *testing.T) {
		db, _ := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: ref("nope")}); err != nil {
			t.Error(err)
		}
	})
	t.Run("ErrNotFoundPlugin", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: accessRef(r.Grant), PluginID: "plu9"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSweep(t *testing.T) {
	db, r := redeemed(t)
	mustCreateCode(t, db, "code2", "plu1", "bse1") // unused, expires t0+5m
	// Nothing is due at t0+1m.
	if res, err := db.Sweep(ctx, t0.Add(time.Minute)); err != nil || res != (store.SweepResult{}) {
		t.Fatalf("early sweep: %+v, %v", res, err)
	}
	// At t0+6m both codes (the redeemed tombstone and the unused one) are
	// past expiry; the tokens (10m) are not.
	res, err := db.Sweep(ctx, t0.Add(6*time.Minute))
	if err != nil || res.Codes != 2 || res.Grants != 0 {
		t.Fatalf("sweep at 6m: %+v, %v", res, err)
	}
	if _, err := db.AuthCode(ctx, ref("code1").Key); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired code tombstone kept")
	}
	res, err = db.Sweep(ctx, t0.Add(11*time.Minute))
	if err != nil || res.Grants != 1 {
		t.Fatalf("sweep at 11m: %+v, %v", res, err)
	}
	if _, err := db.Token(ctx, accessRef(r.Grant)); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired token kept")
	}

	t.Run("OrphansOfDeletedPlugin", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		res, err := db.Sweep(ctx, t0)
		if err != nil || res.Codes != 1 || res.Grants != 1 {
			t.Fatalf("sweep: %+v, %v", res, err)
		}
		_ = r
	})
	t.Run("ManyChunks", func(t *testing.T) {
		db := MustOpen(t)
		mustCreatePlugin(t, db, "plu1")
		const n = 2500
		for i := range n {
			mustCreateCode(t, db, "c"+string(rune(i+0x4e00)), "plu1", "bse1")
		}
		res, err := db.Sweep(ctx, t0.Add(time.Hour))
		if err != nil || res.Codes != n {
			t.Fatalf("sweep: %+v, %v", res, err)
		}
	})
}

// TestCacheFollowsWrites looks tokens up (so that they are cached) before
// every kind of write that ends them, and checks that the lookup after the
// write sees the change.
func TestCacheFollowsWrites(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	warm := func(t *testing.T, db *store.DB, refs ...store.Ref) {
		t.Helper()
		for _, r := range refs {
			if !live(t, db, r, now) {
				t.Fatalf("token %s not live before the write", r.Key)
			}
		}
	}
	t.Run("Revoke", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, accessRef(r.Grant), refreshRef(r.Grant))
		if err := db.RevokeToken(ctx, store.Revocation{Token: refreshRef(r.Grant)}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, accessRef(r.Grant), now) || live(t, db, refreshRef(r.Grant), now) {
			t.Error("revoked tokens still served from the cache")
		}
	})
	t.Run("Rotate", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, accessRef(r.Grant), refreshRef(r.Grant))
		if _, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now)); err != nil {
			t.Fatal(err)
		}
		if live(t, db, accessRef(r.Grant), now) || live(t, db, refreshRef(r.Grant), now) {
			t.Error("rotated pair still served from the cache")
		}
	})
	t.Run("Replay", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, accessRef(r.Grant))
		_ = db.RedeemAuthCode(ctx, redemption("z"))
		if live(t, db, accessRef(r.Grant), now) {
			t.Error("token of a replayed code still served from the cache")
		}
	})
	t.Run("Reuse", func(t *testing.T) {
		db, r := redeemed(t)
		second, err := db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		warm(t, db, accessRef(second))
		_, _ = db.RotateRefreshToken(ctx, rotation(refreshRef(r.Grant), "c", now))
		if live(t, db, accessRef(second), now) {
			t.Error("token of a reused family still served from the cache")
		}
	})
	t.Run("DeletePlugin", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, accessRef(r.Grant))
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		if live(t, db, accessRef(r.Grant), now) {
			t.Error("token of a deleted plugin still served from the cache")
		}
	})
	t.Run("WrongSecretMisses", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, accessRef(r.Grant))
		guess := accessRef(r.Grant)
		guess.Secret = store.HashOf("guess")
		if _, err := db.Token(ctx, guess); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cached token found with a wrong secret: %v", err)
		}
	})
}

// TestCacheNoStaleFill revokes a token while other goroutines keep looking
// it up: once RevokeToken has returned, no lookup may find it, even one
// that read the file before the revocation and fills the cache after.
func TestCacheNoStaleFill(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	for range 20 {
		db, r := redeemed(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = db.Token(ctx, accessRef(r.Grant))
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		if err := db.RevokeToken(ctx, store.Revocation{Token: accessRef(r.Grant)}); err != nil {
			t.Fatal(err)
		}
		for range 200 {
			if live(t, db, accessRef(r.Grant), now) {
				t.Fatal("revoked token found after RevokeToken returned")
			}
		}
		close(stop)
		wg.Wait()
		if live(t, db, accessRef(r.Grant), now) {
			t.Fatal("revoked token found after the readers stopped")
		}
	}
}

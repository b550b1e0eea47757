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

// rotation rotates the refresh token with hash from into a pair named after
// suffix, at now.
func rotation(from store.Ref, suffix string, now time.Time) store.Rotation {
	a, r := ref("access"+suffix), ref("refresh"+suffix)
	return store.Rotation{
		PluginID: "plu1", Refresh: from, Now: now,
		Authorize:  func(store.Plugin) error { return nil },
		NewAccess:  store.Token{Key: a.Key, Secret: a.Secret, IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)},
		NewRefresh: store.Token{Key: r.Key, Secret: r.Secret, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
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
		access, refresh, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		if access.Kind != store.KindAccess || refresh.Kind != store.KindRefresh || access.BaseID != "bse1" ||
			len(access.Scopes) != 1 || access.Code != r.Code.Key || access.Pair != refresh.Key {
			t.Errorf("new pair: %+v / %+v", access, refresh)
		}
		if live(t, db, refOf(r.Access), now) || live(t, db, refOf(r.Refresh), now) {
			t.Error("old pair still active after rotation")
		}
		if !live(t, db, refOf(access), now) || !live(t, db, refOf(refresh), now) {
			t.Error("new pair not active")
		}
	})
	errNo := errors.New("refused")
	for name, tc := range map[string]struct {
		change func(*store.Rotation)
		want   error
	}{
		"ErrInvalidTokenUnknown": {func(r *store.Rotation) { r.Refresh = ref("nope") }, store.ErrInvalidToken},
		"ErrInvalidTokenAccess":  {func(r *store.Rotation) { r.Refresh = ref("accessa") }, store.ErrInvalidToken},
		"ErrInvalidTokenExpired": {func(r *store.Rotation) { r.Now = t0.Add(10 * time.Minute) }, store.ErrInvalidToken},
		"ErrNotFoundPlugin":      {func(r *store.Rotation) { r.PluginID = "plu9" }, store.ErrNotFound},
		"ErrAuthorize":           {func(r *store.Rotation) { r.Authorize = func(store.Plugin) error { return errNo } }, errNo},
	} {
		t.Run(name, func(t *testing.T) {
			db, r := redeemed(t)
			rot := rotation(refOf(r.Refresh), "b", now)
			tc.change(&rot)
			if _, _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A failed attempt changes nothing.
			if !live(t, db, refOf(r.Access), now) || !live(t, db, refOf(r.Refresh), now) {
				t.Error("pair changed by a failed rotation")
			}
		})
	}
	t.Run("ErrInvalidTokenOtherPlugin", func(t *testing.T) {
		db, r := redeemed(t)
		mustCreatePlugin(t, db, "plu2")
		rot := rotation(refOf(r.Refresh), "b", now)
		rot.PluginID = "plu2"
		if _, _, err := db.RotateRefreshToken(ctx, rot); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
		if !live(t, db, refOf(r.Refresh), now) {
			t.Error("another plugin's attempt changed the token")
		}
	})
}

func TestRefreshReuse(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	t.Run("ErrTokenReusedRevokesFamily", func(t *testing.T) {
		db, r := redeemed(t)
		_, second, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		third, thirdRefresh, err := db.RotateRefreshToken(ctx, rotation(refOf(second), "c", now))
		if err != nil {
			t.Fatal(err)
		}
		// The first refresh token comes back: the family dies.
		if _, _, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "d", now)); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse: err = %v, want ErrTokenReused", err)
		}
		for _, h := range []store.Ref{refOf(third), refOf(thirdRefresh), ref("accessd"), ref("refreshd")} {
			if live(t, db, h, now) {
				t.Errorf("token %s survived the family revocation", h.Key)
			}
		}
	})
	t.Run("GracePeriod", func(t *testing.T) {
		db, r := redeemed(t)
		if _, _, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now)); err != nil {
			t.Fatal(err)
		}
		retry := rotation(refOf(r.Refresh), "c", now.Add(5*time.Second))
		retry.Grace = 10 * time.Second
		access, _, err := db.RotateRefreshToken(ctx, retry)
		if err != nil {
			t.Fatalf("retry within grace: %v", err)
		}
		if !live(t, db, refOf(access), now) || !live(t, db, ref("refreshb"), now) {
			t.Error("retry within grace revoked tokens")
		}
		late := rotation(refOf(r.Refresh), "d", now.Add(10*time.Second))
		late.Grace = 10 * time.Second
		if _, _, err := db.RotateRefreshToken(ctx, late); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("reuse after grace: err = %v, want ErrTokenReused", err)
		}
		if live(t, db, refOf(access), now) || live(t, db, ref("refreshb"), now) {
			t.Error("reuse after grace left the family alive")
		}
	})
}

func TestCodeReplayRevokesFamily(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	db, r := redeemed(t)
	access, refresh, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RedeemAuthCode(ctx, redemption("z")); !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("replay: err = %v, want ErrCodeReplayed", err)
	}
	for _, h := range []store.Ref{refOf(r.Access), refOf(r.Refresh), refOf(access), refOf(refresh), ref("accessz")} {
		if _, err := db.Token(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %s survived the replay (err = %v)", h.Key, err)
		}
	}
}

func TestRevokeToken(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	t.Run("RefreshTakesAccess", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Refresh)}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refOf(r.Refresh), now) || live(t, db, refOf(r.Access), now) {
			t.Error("revoking the refresh token left a token alive")
		}
	})
	t.Run("AccessLeavesRefresh", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Access), PluginID: "plu1"}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refOf(r.Access), now) || !live(t, db, refOf(r.Refresh), now) {
			t.Error("revoking the access token: wrong survivors")
		}
		if _, _, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now)); err != nil {
			t.Errorf("refresh after access revocation: %v", err)
		}
	})
	t.Run("OtherPluginIgnored", func(t *testing.T) {
		db, r := redeemed(t)
		mustCreatePlugin(t, db, "plu2")
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Access), PluginID: "plu2"}); err != nil {
			t.Fatal(err)
		}
		if !live(t, db, refOf(r.Access), now) {
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
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Access), PluginID: "plu9"}); !errors.Is(err, store.ErrNotFound) {
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
	if err != nil || res.Codes != 2 || res.Tokens != 0 {
		t.Fatalf("sweep at 6m: %+v, %v", res, err)
	}
	if _, err := db.AuthCode(ctx, ref("code1").Key); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired code tombstone kept")
	}
	res, err = db.Sweep(ctx, t0.Add(11*time.Minute))
	if err != nil || res.Tokens != 2 {
		t.Fatalf("sweep at 11m: %+v, %v", res, err)
	}
	if _, err := db.Token(ctx, refOf(r.Access)); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired token kept")
	}

	t.Run("OrphansOfDeletedPlugin", func(t *testing.T) {
		db, r := redeemed(t)
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		res, err := db.Sweep(ctx, t0)
		if err != nil || res.Codes != 1 || res.Tokens != 2 {
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
		warm(t, db, refOf(r.Access), refOf(r.Refresh))
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Refresh)}); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refOf(r.Access), now) || live(t, db, refOf(r.Refresh), now) {
			t.Error("revoked tokens still served from the cache")
		}
	})
	t.Run("Rotate", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, refOf(r.Access), refOf(r.Refresh))
		if _, _, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now)); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refOf(r.Access), now) || live(t, db, refOf(r.Refresh), now) {
			t.Error("rotated pair still served from the cache")
		}
	})
	t.Run("Replay", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, refOf(r.Access))
		_ = db.RedeemAuthCode(ctx, redemption("z"))
		if live(t, db, refOf(r.Access), now) {
			t.Error("token of a replayed code still served from the cache")
		}
	})
	t.Run("Reuse", func(t *testing.T) {
		db, r := redeemed(t)
		access, _, err := db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		warm(t, db, refOf(access))
		_, _, _ = db.RotateRefreshToken(ctx, rotation(refOf(r.Refresh), "c", now))
		if live(t, db, refOf(access), now) {
			t.Error("token of a reused family still served from the cache")
		}
	})
	t.Run("DeletePlugin", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, refOf(r.Access))
		if err := db.DeletePlugin(ctx, "plu1"); err != nil {
			t.Fatal(err)
		}
		if live(t, db, refOf(r.Access), now) {
			t.Error("token of a deleted plugin still served from the cache")
		}
	})
	t.Run("WrongSecretMisses", func(t *testing.T) {
		db, r := redeemed(t)
		warm(t, db, refOf(r.Access))
		guess := refOf(r.Access)
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
						_, _ = db.Token(ctx, refOf(r.Access))
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		if err := db.RevokeToken(ctx, store.Revocation{Token: refOf(r.Access)}); err != nil {
			t.Fatal(err)
		}
		for range 200 {
			if live(t, db, refOf(r.Access), now) {
				t.Fatal("revoked token found after RevokeToken returned")
			}
		}
		close(stop)
		wg.Wait()
		if live(t, db, refOf(r.Access), now) {
			t.Fatal("revoked token found after the readers stopped")
		}
	}
}

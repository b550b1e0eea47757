package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// testRotationRace presents one refresh token from n goroutines at once,
// round after round, with no grace. Each request is stamped with its own
// clock reading, and the readings are spread so that some requests are
// stamped before the rotation that beats them commits (as when a handler
// takes its time before the store is reached, or a replica's clock lags).
// Exactly one rotation may win; every other presentation is reuse (or, once
// a reuse has revoked the family, unknown), so the family, the winner's new
// pair included, ends revoked.
func testRotationRace(t *testing.T, open func(testing.TB) store.Store) {
	for _, n := range []int{2, 8} {
		t.Run(fmt.Sprintf("%dWay", n), func(t *testing.T) {
			db := open(t)
			MustCreatePlugin(t, db, "plu1")
			for round := range 15 {
				code := fmt.Sprintf("race-%d", round)
				MustCreateCode(t, db, code, "plu1", "bse1")
				r := RedemptionOf(code, code)
				if err := db.RedeemAuthCode(ctx, r); err != nil {
					t.Fatal(err)
				}
				base := T0.Add(2 * time.Minute)
				var wg sync.WaitGroup
				var mu sync.Mutex
				var winners []store.Grant
				reused, unknown := 0, 0
				for i := range n {
					// Stamps descend with i while goroutines start in
					// order: a later committer often carries an earlier
					// stamp.
					rot := Rotation(RefreshRef(r.Grant), fmt.Sprintf("%s-%d", code, i), base.Add(time.Duration(n-i)*time.Millisecond))
					wg.Go(func() {
						g, err := db.RotateRefreshToken(ctx, rot)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							winners = append(winners, g)
						case errors.Is(err, store.ErrTokenReused):
							reused++
						case errors.Is(err, store.ErrInvalidToken):
							unknown++ // decided after a reuse had revoked the family
						default:
							t.Errorf("round %d: unexpected error %v", round, err)
						}
					})
				}
				wg.Wait()
				if len(winners) != 1 || reused < 1 || reused+unknown != n-1 {
					t.Fatalf("round %d: %d winners, %d reuses, %d after revocation of %d presentations; want 1 winner, the rest refused and at least one reuse",
						round, len(winners), reused, unknown, n)
				}
				for _, ref := range Refs(winners[0]) {
					if Live(t, db, ref, base) {
						t.Fatalf("round %d: the winner's %s is active after the reuse revoked the family", round, ref.Key)
					}
				}
			}
		})
	}
}

// testReuseRule pins the rotation rule: whether a token was rotated is a
// fact of the stored record, and a presentation stamped before the rotation
// it follows is never inside the grace window.
func testReuseRule(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	for name, tc := range map[string]struct {
		grace time.Duration
		at    time.Duration // the second presentation's stamp, relative to the rotation's
		want  error
	}{
		"NoGraceSameInstantIsReuse":     {0, 0, store.ErrTokenReused},
		"NoGraceEarlierStampIsReuse":    {0, -time.Second, store.ErrTokenReused},
		"GraceEarlierStampIsReuse":      {10 * time.Second, -time.Millisecond, store.ErrTokenReused},
		"GraceInsideWindow":             {10 * time.Second, 5 * time.Second, nil},
		"GraceAtWindowEndIsReuse":       {10 * time.Second, 10 * time.Second, store.ErrTokenReused},
		"GraceSameInstantInsideWindow":  {10 * time.Second, 0, nil},
		"NoGraceLaterStampIsReuse":      {0, 3 * time.Minute, store.ErrTokenReused},
		"GraceFarEarlierStampIsReuse":   {10 * time.Second, -time.Hour, store.ErrTokenReused},
		"GraceJustBeforeWindowEndLives": {10 * time.Second, 10*time.Second - time.Nanosecond, nil},
	} {
		t.Run(name, func(t *testing.T) {
			db, r := redeemed(t, open)
			second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
			if err != nil {
				t.Fatal(err)
			}
			again := Rotation(RefreshRef(r.Grant), "c", now.Add(tc.at))
			again.Grace = tc.grace
			_, err = db.RotateRefreshToken(ctx, again)
			if !errors.Is(err, tc.want) {
				t.Fatalf("second presentation: err = %v, want %v", err, tc.want)
			}
			if got, want := Live(t, db, AccessRef(second), now), tc.want == nil; got != want {
				t.Errorf("first rotation's access token live = %v, want %v", got, want)
			}
		})
	}
}

// testRevokeRotatedRefresh revokes a refresh token that was already
// rotated: every token descended from it must stop working, and the answer
// must not leave a live branch that a thief could keep refreshing.
func testRevokeRotatedRefresh(t *testing.T, open func(testing.TB) store.Store) {
	now := T0.Add(2 * time.Minute)
	t.Run("DescendantsRevoked", func(t *testing.T) {
		db, r := redeemed(t, open)
		second, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now))
		if err != nil {
			t.Fatal(err)
		}
		third, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(second), "c", now))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: now}); err != nil {
			t.Fatal(err)
		}
		for _, ref := range Refs(second, third) {
			if Live(t, db, ref, now) {
				t.Errorf("%s descends from the revoked refresh token and is still active", ref.Key)
			}
		}
		if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(third), "d", now)); !errors.Is(err, store.ErrInvalidToken) {
			t.Error("the newest refresh token of a revoked family still rotates")
		}
	})
	t.Run("OtherFamiliesUntouched", func(t *testing.T) {
		db, r := redeemed(t, open)
		MustCreateCode(t, db, "code2", "plu1", "bse1")
		other := RedemptionOf("code2", "o")
		if err := db.RedeemAuthCode(ctx, other); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now)); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: now}); err != nil {
			t.Fatal(err)
		}
		for _, ref := range Refs(other.Grant) {
			if !Live(t, db, ref, now) {
				t.Errorf("%s of another family was revoked", ref.Key)
			}
		}
	})
	t.Run("RaceWithRefresh", func(t *testing.T) {
		// Whichever the store decides first, once both have answered no
		// token descended from the revoked one is active.
		for round := range 20 {
			db, r := redeemed(t, open)
			var wg sync.WaitGroup
			var fresh store.Grant
			var rotErr error
			wg.Go(func() { fresh, rotErr = db.RotateRefreshToken(ctx, Rotation(RefreshRef(r.Grant), "b", now)) })
			wg.Go(func() {
				if err := db.RevokeToken(ctx, store.Revocation{Token: RefreshRef(r.Grant), Now: now}); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if rotErr == nil {
				for _, ref := range Refs(fresh) {
					if Live(t, db, ref, now) {
						t.Fatalf("round %d: %s descends from a revoked token and is active", round, ref.Key)
					}
				}
			}
			for _, ref := range Refs(r.Grant) {
				if Live(t, db, ref, now) {
					t.Fatalf("round %d: revoked %s is active", round, ref.Key)
				}
			}
		}
	})
}

// testSubject: the subject of a code goes to the grant redeemed from it and
// to every rotation after, whatever the caller put in the new grant.
func testSubject(t *testing.T, open func(testing.TB) store.Store) {
	db := open(t)
	MustCreatePlugin(t, db, "plu1")
	err := db.CreateAuthCode(ctx, store.AuthCode{Key: Ref("subj").Key, Secret: Ref("subj").Secret, PluginID: "plu1", BaseID: "bse1",
		IssuedAt: T0, ExpiresAt: T0.Add(5 * time.Minute), Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r := RedemptionOf("subj", "s")
	r.Grant.Subject = "mallory" // ignored: the code's subject wins
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	now := T0.Add(2 * time.Minute)
	rot := Rotation(RefreshRef(r.Grant), "s2", now)
	rot.New.Subject = "mallory"
	second, err := db.RotateRefreshToken(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []store.Ref{AccessRef(r.Grant), AccessRef(second), RefreshRef(second)} {
		tok, err := db.Token(ctx, ref)
		if err != nil || tok.Subject != "alice" {
			t.Errorf("token %s: subject %q, err %v; want alice", ref.Key, tok.Subject, err)
		}
	}
}

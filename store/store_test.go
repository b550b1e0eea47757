package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
)

// MustOpen opens a store in a fresh temporary folder and closes it when the
// test ends.
func MustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "data", "plugintoken.db"))
}

func mustOpenAt(tb testing.TB, path string, opts ...store.Options) *store.DB {
	tb.Helper()
	var o store.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	db, err := store.Open(path, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// seed stores a plugin "plu1" with secret "s3cret" and a code "code1" for
// base "bse1", issued at t0 and valid for five minutes.
func seed(tb testing.TB, db *store.DB) {
	tb.Helper()
	mustCreatePlugin(tb, db, "plu1")
	mustCreateCode(tb, db, "code1", "plu1", "bse1")
}

func mustCreatePlugin(tb testing.TB, db *store.DB, id string) {
	tb.Helper()
	err := db.CreatePlugin(ctx, store.Plugin{ID: id, Name: "Chart", SecretHash: store.HashOf("s3cret"),
		SecretHint: "cret", Scopes: []string{"table|read"}, CreatedAt: t0, UpdatedAt: t0})
	if err != nil {
		tb.Fatalf("CreatePlugin: %v", err)
	}
}

func mustCreateCode(tb testing.TB, db *store.DB, code, plugin, base string) {
	tb.Helper()
	err := db.CreateAuthCode(ctx, store.AuthCode{Key: ref(code).Key, Secret: ref(code).Secret, PluginID: plugin, BaseID: base,
		IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)})
	if err != nil {
		tb.Fatalf("CreateAuthCode: %v", err)
	}
}

// redemption asks for code1 of plu1 on bse1 at t0+1m, minting a grant whose
// secrets are named after suffix.
func redemption(suffix string) store.Redemption { return redemptionOf("code1", suffix) }

// redemptionOf is redemption for another code.
func redemptionOf(code, suffix string) store.Redemption {
	return store.Redemption{
		PluginID: "plu1", BaseID: "bse1", Code: ref(code), Now: t0.Add(time.Minute),
		Authorize: func(store.Plugin) error { return nil },
		Grant: store.Grant{Key: store.NewGrantKey(ref(code).Key),
			AccessSecret: store.HashOf("access" + suffix), RefreshSecret: store.HashOf("refresh" + suffix),
			PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"}, IssuedAt: t0,
			AccessExpiresAt: t0.Add(10 * time.Minute), RefreshExpiresAt: t0.Add(10 * time.Minute)},
	}
}

// accessRef and refreshRef are the Refs that present a grant's tokens.
func accessRef(g store.Grant) store.Ref  { return store.Ref{Key: g.Key, Secret: g.AccessSecret} }
func refreshRef(g store.Grant) store.Ref { return store.Ref{Key: g.Key, Secret: g.RefreshSecret} }

func TestOpen(t *testing.T) {
	t.Run("FileIsPrivate", func(t *testing.T) {
		db := MustOpen(t)
		st, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("mode = %v, want %v", got, want)
		}
		dir, err := os.Stat(filepath.Dir(db.Path()))
		if err != nil {
			t.Fatal(err)
		}
		if got := dir.Mode().Perm(); got&0o077 != 0 {
			t.Errorf("folder mode = %v, want no group/other access", got)
		}
	})
	t.Run("ErrLocked", func(t *testing.T) {
		db := MustOpen(t)
		start := time.Now()
		_, err := store.Open(db.Path(), store.Options{LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second Open: err = %v, want ErrLocked", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("second Open took %s", d)
		}
	})
	t.Run("ErrSchemaVersion", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.db")
		db := mustOpenAt(t, path)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		store.SetSchemaVersionForTest(t, path, "999")
		if _, err := store.Open(path, store.Options{}); err == nil {
			t.Fatal("Open of a file with another schema version succeeded")
		}
	})
}

func TestPlugins(t *testing.T) {
	db := MustOpen(t)
	mustCreatePlugin(t, db, "plu1")

	if err := db.CreatePlugin(ctx, store.Plugin{ID: "plu1"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreatePlugin twice: err = %v, want ErrExists", err)
	}
	p, err := db.Plugin(ctx, "plu1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Chart" || p.SecretHash != store.HashOf("s3cret") || !p.CreatedAt.Equal(t0) {
		t.Errorf("Plugin = %+v", p)
	}
	if _, err := db.Plugin(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Plugin(nope): err = %v, want ErrNotFound", err)
	}

	if err := db.SetPluginSecret(ctx, "plu1", store.HashOf("new"), "new", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.Plugin(ctx, "plu1"); p.SecretHash != store.HashOf("new") || !p.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after SetPluginSecret: %+v", p)
	}
	if err := db.SetPluginSecret(ctx, "nope", store.Hash{}, "", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPluginSecret(nope): err = %v, want ErrNotFound", err)
	}

	if err := db.DeletePlugin(ctx, "plu1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePlugin(ctx, "plu1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePlugin twice: err = %v, want ErrNotFound", err)
	}
	if err := db.CreateAuthCode(ctx, store.AuthCode{Key: ref("c").Key, PluginID: "plu1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAuthCode for deleted plugin: err = %v, want ErrNotFound", err)
	}
}

func TestRedeemAuthCode(t *testing.T) {
	errNo := errors.New("refused")
	tests := []struct {
		name   string
		change func(db *store.DB, r *store.Redemption)
		want   error
	}{
		{"OK", func(*store.DB, *store.Redemption) {}, nil},
		{"ErrInvalidCodeUnknown", func(_ *store.DB, r *store.Redemption) { *r = redemptionOf("other", "a") }, store.ErrInvalidCode},
		{"ErrInvalidCodeWrongSecret", func(_ *store.DB, r *store.Redemption) { r.Code.Secret = store.HashOf("guess") }, store.ErrInvalidCode},
		{"ErrInvalidCodeExpired", func(_ *store.DB, r *store.Redemption) { r.Now = t0.Add(5 * time.Minute) }, store.ErrInvalidCode},
		{"ErrInvalidCodeOtherBase", func(_ *store.DB, r *store.Redemption) { r.BaseID = "bse2" }, store.ErrInvalidCode},
		{"ErrInvalidCodeOtherPlugin", func(db *store.DB, r *store.Redemption) {
			mustCreatePlugin(t, db, "plu2")
			r.PluginID = "plu2"
		}, store.ErrInvalidCode},
		{"ErrNotFoundPlugin", func(db *store.DB, r *store.Redemption) { _ = db.DeletePlugin(ctx, "plu1") }, store.ErrNotFound},
		{"ErrAuthorize", func(_ *store.DB, r *store.Redemption) {
			r.Authorize = func(store.Plugin) error { return errNo }
		}, errNo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpen(t)
			seed(t, db)
			r := redemption("a")
			tt.change(db, &r)
			err := db.RedeemAuthCode(ctx, r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RedeemAuthCode: err = %v, want %v", err, tt.want)
			}
			_, terr := db.Token(ctx, accessRef(r.Grant))
			if tt.want != nil {
				if !errors.Is(terr, store.ErrNotFound) {
					t.Errorf("after a failed redemption the access token exists (err = %v)", terr)
				}
				// A failed attempt leaves the code usable by its owner.
				if tt.want != store.ErrNotFound {
					if err := db.RedeemAuthCode(ctx, redemption("b")); err != nil {
						t.Errorf("code not usable after a failed attempt: %v", err)
					}
				}
				return
			}
			access, err := db.Token(ctx, accessRef(r.Grant))
			if err != nil {
				t.Fatalf("Token(access): %v", err)
			}
			refresh, err := db.Token(ctx, refreshRef(r.Grant))
			if err != nil {
				t.Fatalf("Token(refresh): %v", err)
			}
			if access.Kind != store.KindAccess || refresh.Kind != store.KindRefresh {
				t.Errorf("kinds = %s, %s", access.Kind, refresh.Kind)
			}
			if access.Key.Family() != ref("code1").Key.Family() || access.Key != refresh.Key {
				t.Errorf("family links wrong: access %+v refresh %+v", access, refresh)
			}
			c, err := db.AuthCode(ctx, ref("code1").Key)
			if err != nil || !c.RedeemedAt.Equal(r.Now) {
				t.Errorf("code after redemption: %+v, %v", c, err)
			}
			if err := db.RedeemAuthCode(ctx, redemption("b")); !errors.Is(err, store.ErrCodeReplayed) {
				t.Errorf("second redemption: err = %v, want ErrCodeReplayed", err)
			}
		})
	}
}

func TestRedeemAuthCodeConcurrent(t *testing.T) {
	db := MustOpen(t)
	seed(t, db)
	const n = 50
	var ok, invalid atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := db.RedeemAuthCode(ctx, redemption(string(rune('A'+i))))
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

func TestRestartKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db := mustOpenAt(t, path)
	seed(t, db)
	r := redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	mustCreateCode(t, db, "code2", "plu1", "bse1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenAt(t, path)
	if _, err := db.Token(ctx, accessRef(r.Grant)); err != nil {
		t.Errorf("access token lost across restart: %v", err)
	}
	if _, err := db.Token(ctx, refreshRef(r.Grant)); err != nil {
		t.Errorf("refresh token lost across restart: %v", err)
	}
	if err := db.RedeemAuthCode(ctx, redemption("b")); !errors.Is(err, store.ErrCodeReplayed) {
		t.Errorf("consumed code after restart: err = %v, want ErrCodeReplayed", err)
	}
	r2 := redemptionOf("code2", "c")
	if err := db.RedeemAuthCode(ctx, r2); err != nil {
		t.Errorf("unused code not redeemable after restart: %v", err)
	}
}

func TestTokenOfDeletedPlugin(t *testing.T) {
	db := MustOpen(t)
	seed(t, db)
	r := redemption("a")
	if err := db.RedeemAuthCode(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePlugin(ctx, "plu1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Token(ctx, accessRef(r.Grant)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of a deleted plugin: err = %v, want ErrNotFound", err)
	}
}

// ref is the Ref of a code or token named name in a test.
func ref(name string) store.Ref {
	h := sha256.Sum256([]byte("key:" + name))
	var k store.Key
	copy(k[:], h[:])
	return store.Ref{Key: k, Secret: store.HashOf(name)}
}

func TestNewKeySortsByTime(t *testing.T) {
	a, b := store.NewKey(t0), store.NewKey(t0.Add(time.Millisecond))
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Errorf("key of a later token sorts first: %s, %s", a, b)
	}
	if store.NewKey(t0) == store.NewKey(t0) {
		t.Error("two keys of the same millisecond are equal")
	}
}

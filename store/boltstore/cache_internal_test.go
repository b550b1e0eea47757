package boltstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	bolt "go.etcd.io/bbolt"
)

// TestCacheNeverStaleAfterCommit looks the token up at the first moment
// its revocation is visible to readers of the file (bbolt's commit
// handlers run after the new meta page is written, before the write
// returns). A token cache invalidated only after the write returned served
// the revoked token in that window, while any request that read the file
// (a refresh, a replay) already saw it gone: a history that is not
// linearizable.
func TestCacheNeverStaleAfterCommit(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if err := db.CreatePlugin(ctx, store.Plugin{ID: "plu1", Scopes: []string{"table|read"}}); err != nil {
		t.Fatal(err)
	}
	code := store.Ref{Key: store.NewKey(now), Secret: store.HashOf("code")}
	if err := db.CreateAuthCode(ctx, store.AuthCode{Key: code.Key, Secret: code.Secret, PluginID: "plu1", BaseID: "bse1",
		IssuedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	g := store.Grant{Key: store.NewGrantKey(code.Key), AccessSecret: store.HashOf("a"), RefreshSecret: store.HashOf("r"), PluginID: "plu1",
		BaseID: "bse1", IssuedAt: now, AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}
	if err := db.RedeemAuthCode(ctx, store.Redemption{PluginID: "plu1", BaseID: "bse1", Code: code, Now: now,
		Authorize: func(store.Plugin) error { return nil }, Grant: g}); err != nil {
		t.Fatal(err)
	}
	access := store.Ref{Key: g.Key, Secret: g.AccessSecret}
	if _, err := db.Token(ctx, access); err != nil { // cached from here on
		t.Fatal(err)
	}
	if _, _, ok, _ := db.cache.get(access); !ok {
		t.Fatal("the token was not cached: the test would prove nothing")
	}

	var seen error
	checked := false
	if err := db.write(func(tx txn) error {
		tx.OnCommit(func() {
			checked = true
			_, seen = db.Token(ctx, access)
		})
		return db.revokeFamily(tx, g.Key.Family())
	}); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the commit handler did not run")
	}
	if !errors.Is(seen, store.ErrNotFound) {
		t.Fatalf("lookup right after the revocation committed: err = %v, want ErrNotFound (served stale from the cache)", seen)
	}
	if _, err := db.Token(ctx, access); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup after the write returned: err = %v, want ErrNotFound", err)
	}
	if _, _, ok, _ := db.cache.get(access); ok {
		t.Fatal("a lookup during the write put the revoked token back in the cache")
	}
}

// TestSweepSkipsUndecodable puts a record that does not decode among
// expired ones: the sweep removes the others, names the bad one, and keeps
// going (one such record used to stop every sweep for good).
func TestSweepSkipsUndecodable(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	var bad store.Key
	for i := range 5 {
		k := store.NewKey(t0.Add(time.Duration(i) * time.Millisecond))
		if i == 2 {
			bad = k
			// A record damaged after it was written: it keeps its entry
			// in the expiry index.
			if err := db.write(func(tx txn) error {
				if err := tx.Bucket(bucketExpiry).Put(codec.ExpiryKey(t0.Add(time.Minute), codec.ExpiryCode, k), nil); err != nil {
					return err
				}
				return tx.Bucket(bucketCodes).Put(k[:], []byte{0xff, 1, 2})
			}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: k, PluginID: "plu1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		res, err := db.Sweep(ctx, t0.Add(time.Hour))
		if err != nil {
			t.Fatalf("sweep %d: %v", round, err)
		}
		wantCodes := 4
		if round == 1 {
			wantCodes = 0
		}
		if res.Codes != wantCodes || len(res.Undecodable) != 1 || res.Undecodable[0] != "codes/"+bad.String() {
			t.Fatalf("sweep %d: %+v, want %d codes removed and codes/%s undecodable", round, res, wantCodes, bad)
		}
	}
}

// TestSweepWritesOnlyWhatItDeletes: a sweep reads the records in read
// transactions and writes only the chunks that have something to delete.
// It used to walk every record in write transactions, a commit and two
// fsyncs per thousand records each minute, holding the write lock from the
// exchanges meanwhile, also when nothing had expired.
func TestSweepWritesOnlyWhatItDeletes(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	db.sweepBudget = time.Hour // a chunk, however slow this machine
	// 2,500 codes (three chunks); those of the first 500 expire in a
	// minute, the rest in a day.
	const n = 2500
	var keys []store.Key
	for i := range n {
		k := store.NewKey(t0.Add(time.Duration(i) * time.Millisecond))
		ttl := 24 * time.Hour
		if i < 500 {
			ttl = time.Minute
		}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: k, PluginID: "plu1", IssuedAt: t0, ExpiresAt: t0.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	txid := func() (id int) {
		_ = db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	if res, err := db.Sweep(ctx, t0.Add(time.Second)); err != nil || res.Codes != 0 {
		t.Fatalf("sweep with nothing expired: %+v, %v", res, err)
	}
	if after := txid(); after != before {
		t.Errorf("a sweep that deleted nothing committed %d transactions", after-before)
	}
	res, err := db.Sweep(ctx, t0.Add(time.Hour))
	if err != nil || res.Codes != 500 {
		t.Fatalf("sweep: %+v, %v, want 500 codes removed", res, err)
	}
	if after := txid(); after != before+1 {
		t.Errorf("the sweep of one chunk's expired codes committed %d transactions, want 1", after-before)
	}
	for i, k := range keys {
		_, err := db.AuthCode(ctx, k)
		if gone := errors.Is(err, store.ErrNotFound); gone != (i < 500) {
			t.Fatalf("code %d: %v after the sweep", i, err)
		}
	}
}

// openWithPlugin opens a store in a temporary folder, closed when the test
// ends, with one plugin, plu1, and returns it with the tests' clock.
func openWithPlugin(t *testing.T) (*DB, time.Time) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.CreatePlugin(context.Background(), store.Plugin{ID: "plu1"}); err != nil {
		t.Fatal(err)
	}
	return db, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
}

// TestSweepStopsAtItsBudget: a sweep transaction ends when its time budget
// is spent, with at least one record dealt with, and the sweep goes on in
// the next: every due record goes, in more transactions, and nothing else.
func TestSweepStopsAtItsBudget(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	db.sweepBudget = time.Nanosecond
	for i := range 60 {
		ttl := time.Minute
		if i%3 == 0 {
			ttl = 24 * time.Hour
		}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: store.NewKey(t0), PluginID: "plu1", IssuedAt: t0, ExpiresAt: t0.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	var writes int
	_ = db.bolt.View(func(tx *bolt.Tx) error { writes = tx.ID(); return nil })
	res, err := db.Sweep(ctx, t0.Add(time.Hour))
	if err != nil || res.Codes != 40 {
		t.Fatalf("sweep: %+v, %v, want the 40 expired codes", res, err)
	}
	var after int
	_ = db.bolt.View(func(tx *bolt.Tx) error { after = tx.ID(); return nil })
	if after-writes < 2 {
		t.Errorf("a sweep with a spent budget committed %d transactions, want several", after-writes)
	}
	if res, err := db.Sweep(ctx, t0.Add(time.Hour)); err != nil || res.Codes != 0 {
		t.Errorf("second sweep: %+v, %v, want nothing left", res, err)
	}
}

// TestRedemptionLeavesOneRecordAndOneEntry: a redeemed code is consumed
// (schema 6): what a live pair keeps is its grant, which carries the code's
// hash, and the grant's expiry entry. Schema 5 kept the code as a tombstone
// with an entry of its own as well, 60% more bytes a pair.
func TestRedemptionLeavesOneRecordAndOneEntry(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	const n = 100
	for i := range n {
		code := store.Ref{Key: store.NewKey(t0), Secret: store.HashOf(fmt.Sprint("code", i))}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: code.Key, Secret: code.Secret, PluginID: "plu1", BaseID: "bse1",
			IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), Subject: "usr0123456789abcdef"}); err != nil {
			t.Fatal(err)
		}
		g := store.Grant{Key: store.NewGrantKey(code.Key), AccessSecret: store.HashOf(fmt.Sprint("a", i)), RefreshSecret: store.HashOf(fmt.Sprint("r", i)),
			PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"}, IssuedAt: t0, AccessExpiresAt: t0.Add(time.Hour), RefreshExpiresAt: t0.Add(720 * time.Hour)}
		if err := db.RedeemAuthCode(ctx, store.Redemption{PluginID: "plu1", BaseID: "bse1", Code: code, Now: t0,
			Authorize: func(store.Plugin) error { return nil }, Grant: g}); err != nil {
			t.Fatal(err)
		}
	}
	counts, size := map[string]int{}, 0
	if err := db.view(ctx, func(tx txn) error {
		for _, name := range [][]byte{bucketCodes, bucketGrants, bucketExpiry} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				counts[string(name)]++
				size += len(k) + len(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if counts["codes"] != 0 || counts["grants"] != n || counts["expiry"] != n {
		t.Errorf("after %d redemptions: %v, want no code, %d grants and %d entries", n, counts, n, n)
	}
	// A grant's key and value, and its entry's key: 24+107+33.
	if perPair := size / n; perPair > 170 {
		t.Errorf("%d bytes of keys and values a pair, want at most 170", perPair)
	}
}

// TestGrantPagesFillUp: codes issued one after the other have keys in that
// order (NewKey keeps the millisecond's fraction), so the grants their
// exchanges write, through the group commit, are appended to full pages:
// bbolt's leaf pages of grants/ end up at least 90% used. With keys of the
// millisecond alone (random within it) and pages split at 90%, they were
// 70-80% used.
func TestGrantPagesFillUp(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	const n = 6000
	codes := make([]store.Ref, n)
	for i := range codes {
		issued := t0.Add(time.Duration(i) * time.Microsecond) // 6 ms in all: 1,000 codes a millisecond
		codes[i] = store.Ref{Key: store.NewKey(issued), Secret: store.HashOf(fmt.Sprint("code", i))}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: codes[i].Key, Secret: codes[i].Secret, PluginID: "plu1", BaseID: "bse0123456789abcdef",
			IssuedAt: issued, ExpiresAt: issued.Add(5 * time.Minute), Subject: "usr0123456789abcdef"}); err != nil {
			t.Fatal(err)
		}
	}
	// Exchanged in issue order by 32 clients at once: each group commit
	// carries the next few.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				code := codes[i]
				g := store.Grant{Key: store.NewGrantKey(code.Key), AccessSecret: store.HashOf(fmt.Sprint("a", i)), RefreshSecret: store.HashOf(fmt.Sprint("r", i)),
					PluginID: "plu1", BaseID: "bse0123456789abcdef", Scopes: []string{"table|read"}, IssuedAt: t0, AccessExpiresAt: t0.Add(time.Hour), RefreshExpiresAt: t0.Add(720 * time.Hour)}
				if err := db.RedeemAuthCode(ctx, store.Redemption{PluginID: "plu1", BaseID: "bse0123456789abcdef", Code: code, Now: t0,
					Authorize: func(store.Plugin) error { return nil }, Grant: g}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var st bolt.BucketStats
	if err := db.view(ctx, func(tx txn) error {
		st = tx.Bucket(bucketGrants).Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if used := float64(st.LeafInuse) / float64(st.LeafAlloc); st.KeyN != n || used < 0.9 {
		t.Errorf("%d grants on %d leaf pages, %.0f%% used; want at least 90%%", st.KeyN, st.LeafPageN, 100*used)
	}
}

// TestRotatedGrantsKeepPagesFull: a rotation writes its new grant among
// its family's, on a page the appends left full. Split at the appends'
// 95%, such a page became a full one and one holding the new grant alone:
// with a rotation for three families in five, grants' leaf pages ended 26%
// used. A transaction that writes behind the last key splits in halves,
// and they stay at least 60% used.
func TestRotatedGrantsKeepPagesFull(t *testing.T) {
	ctx := context.Background()
	db, t0 := openWithPlugin(t)
	allow := func(store.Plugin) error { return nil }
	const n = 2000
	grants := make([]store.Grant, n)
	for i := range grants {
		issued := t0.Add(time.Duration(i) * 10 * time.Millisecond) // 20 s in all
		code := store.Ref{Key: store.NewKey(issued), Secret: store.HashOf(fmt.Sprint("code", i))}
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: code.Key, Secret: code.Secret, PluginID: "plu1", BaseID: "bse1",
			IssuedAt: issued, ExpiresAt: issued.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		grants[i] = store.Grant{Key: store.NewGrantKey(code.Key), AccessSecret: store.HashOf(fmt.Sprint("a", i)), RefreshSecret: store.HashOf(fmt.Sprint("r", i)),
			PluginID: "plu1", BaseID: "bse1", IssuedAt: issued, AccessExpiresAt: issued.Add(time.Hour), RefreshExpiresAt: issued.Add(720 * time.Hour)}
		if err := db.RedeemAuthCode(ctx, store.Redemption{PluginID: "plu1", BaseID: "bse1", Code: code, Now: issued, Authorize: allow, Grant: grants[i]}); err != nil {
			t.Fatal(err)
		}
	}
	used := func() (float64, int) {
		var st bolt.BucketStats
		_ = db.view(ctx, func(tx txn) error { st = tx.Bucket(bucketGrants).Stats(); return nil })
		return float64(st.LeafInuse) / float64(st.LeafAlloc), st.KeyN
	}
	if u, _ := used(); u < 0.9 {
		t.Fatalf("appended grants: pages %.0f%% used, want at least 90%%", 100*u)
	}
	now := t0.Add(time.Hour)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 3 * n / 5 {
		j := rnd.IntN(n)
		fresh := store.Grant{Key: store.NewGrantKey(grants[j].Key), AccessSecret: store.HashOf(fmt.Sprint("a'", i)), RefreshSecret: store.HashOf(fmt.Sprint("r'", i)),
			IssuedAt: now, AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(720 * time.Hour)}
		g, err := db.RotateRefreshToken(ctx, store.Rotation{PluginID: "plu1", Refresh: store.Ref{Key: grants[j].Key, Secret: grants[j].RefreshSecret},
			Now: now, Authorize: allow, New: fresh})
		if err != nil {
			t.Fatal(err)
		}
		grants[j] = g
	}
	if u, keys := used(); u < 0.6 {
		t.Errorf("after %d rotations: %d grants on pages %.0f%% used, want at least 60%%", 3*n/5, keys, 100*u)
	}
}

// TestCacheMemoryStaysFlat churns the token cache the way a gateway's
// stream of tokens it has not seen before does (each new one evicts an old
// one), and unknown keys its absent set, and checks that the cache's memory
// stays what it holds. Evicting one entry of a Go map for each one added
// grew the map without end: Go's maps keep the slots of deleted entries
// until they grow, and then grow. With 1,024 entries that was 0.6 MiB after
// 200,000 lookups and 2.5 MiB after 40 million; at the default 65,536, 20
// MiB after 3 million and 38 MiB after 30 million.
func TestCacheMemoryStaysFlat(t *testing.T) {
	const max = 1024
	c := newTokenCache(max)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	churn := func(n int) {
		for range n {
			g := &store.Grant{Key: store.NewKey(now), PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"},
				IssuedAt: now, AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}
			c.fill(g, c.epoch.Load())
			c.noteAbsent(store.NewKey(now))
		}
	}
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	// Both measurements follow a whole number of the cache's halves, so
	// that it holds as many entries at each.
	churn(400 * max / 2)
	before := heap()
	churn(4000 * max / 2)
	grew := heap() - before
	runtime.KeepAlive(c)
	if held, absent := c.len(); held > max || absent > max {
		t.Fatalf("the cache holds %d grants and %d absent keys, over its %d", held, absent, max)
	}
	t.Logf("heap after %d fills: %+d KiB against after %d", 4400*max/2, grew>>10, 400*max/2)
	if grew > 128<<10 {
		t.Fatalf("the cache's memory grew by %d KiB over %d fills while it held the same number of entries", grew>>10, 4000*max/2)
	}
}

// TestGenerationsBound checks the cache's two generations at small bounds:
// never more than the bound, and the entry just added is always there.
func TestGenerationsBound(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, bound := range []int{1, 2, 3, 4, 7, 1024} {
		g := newGenerations[int](bound)
		for i := range 5 * bound {
			k := store.NewKey(now)
			g.put(k, i)
			if v, ok := g.get(k); !ok || v != i {
				t.Fatalf("bound %d: the key just added (%d) is not there", bound, i)
			}
			if n := g.len(); n > bound {
				t.Fatalf("bound %d: %d entries after %d additions", bound, n, i+1)
			}
		}
		if n := g.len(); n < bound/2 {
			t.Fatalf("bound %d: only %d entries kept", bound, n)
		}
	}
}

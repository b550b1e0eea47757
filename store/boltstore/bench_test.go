package boltstore_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// benchCodes stores n fresh codes of plu1 for bse1 and returns their Refs.
func benchCodes(b *testing.B, db *boltstore.DB, n int) []store.Ref {
	b.Helper()
	refs := make([]store.Ref, n)
	now := time.Now()
	for i := range refs {
		// Codes are issued over time, as in make bench (about 15 per ms).
		at := now.Add(time.Duration(i) * 70 * time.Microsecond)
		refs[i] = store.Ref{Key: store.NewKey(at), Secret: store.HashOf(fmt.Sprint("code", i))}
	}
	// Issue them concurrently so the group commit makes this quick.
	var next atomic.Int64
	errs := make(chan error, 64)
	for range 64 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					errs <- nil
					return
				}
				r := refs[i]
				if err := db.CreateAuthCode(ctx, store.AuthCode{Key: r.Key, Secret: r.Secret, PluginID: "plu1",
					BaseID: "bse1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	return refs
}

// BenchmarkRedeemAuthCode measures the exchange's store work under
// concurrency: each op redeems a fresh code into a token pair, fsync on,
// sharing commits with the other goroutines (64 of them, as in make bench).
func BenchmarkRedeemAuthCode(b *testing.B) {
	db := MustOpen(b)
	mustCreatePlugin(b, db, "plu1")
	refs := benchCodes(b, db, b.N)
	var next atomic.Int64
	b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			now := time.Now()
			err := db.RedeemAuthCode(ctx, store.Redemption{PluginID: "plu1", BaseID: "bse1", Code: refs[i], Now: now,
				Authorize: func(store.Plugin) error { return nil },
				Grant: store.Grant{Key: store.NewGrantKey(refs[i].Key),
					AccessSecret: store.HashOf(fmt.Sprint("access", i)), RefreshSecret: store.HashOf(fmt.Sprint("refresh", i)),
					PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"}, IssuedAt: now,
					AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st, cs := boltstore.BoltStats(db), boltstore.CommitStatsOf(db)
	if cs.Commits > 0 {
		b.ReportMetric(float64(cs.Writes)/float64(cs.Commits), "writes/commit")
		b.ReportMetric(float64(st.TxStats.GetWrite())/float64(cs.Commits), "pages/commit")
		b.ReportMetric(float64(st.TxStats.GetWriteTime().Microseconds())/float64(cs.Commits), "µs-write/commit")
	}
}

// BenchmarkToken measures a token lookup by a presented Ref, the read path
// of introspection and of the gateway middleware: "Cached" is a token looked
// up before (the common case), "Uncached" a read transaction and a decode.
func BenchmarkToken(b *testing.B) {
	for name, tc := range map[string]struct {
		size    int
		unknown bool
	}{"Cached": {0, false}, "Uncached": {-1, false}, "UnknownCached": {0, true}, "UnknownUncached": {-1, true}} {
		b.Run(name, func(b *testing.B) {
			db := mustOpenAt(b, filepath.Join(b.TempDir(), "plugintoken.db"), boltstore.Options{TokenCacheSize: tc.size})
			seed(b, db)
			r := redemption("a")
			if err := db.RedeemAuthCode(ctx, r); err != nil {
				b.Fatal(err)
			}
			ref := accessRef(r.Grant)
			if tc.unknown {
				ref = storetest.Ref("never-issued") // well-formed, never issued
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Token(ctx, ref); (err != nil) != tc.unknown {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

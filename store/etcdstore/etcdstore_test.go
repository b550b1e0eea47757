package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/etcdstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// TestConformance runs the suite every backend must pass against a real
// (embedded) etcd; each test gets a prefix of its own.
func TestConformance(t *testing.T) {
	etcd := etcdtest.Start(t)
	var n atomic.Int64
	storetest.Run(t, func(tb testing.TB) store.Store {
		db, err := etcdstore.Open(etcdstore.Options{
			Endpoints: []string{etcd.Endpoint},
			Prefix:    fmt.Sprintf("/test-%d/", n.Add(1)),
			// Generous: under -race on a busy machine 50 concurrent
			// redemptions outlast etcd's 3 s default.
			RequestTimeout: 30 * time.Second,
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		return db
	})
}

// TestConformanceOnHostClient runs the suite through one etcd client the
// host application owns (New): every store shares it, and closing a store
// leaves it open.
func TestConformanceOnHostClient(t *testing.T) {
	c := hostClient(t, etcdtest.Start(t).Endpoint)
	var n atomic.Int64
	storetest.Run(t, func(tb testing.TB) store.Store {
		db, err := etcdstore.New(c, etcdstore.Options{Prefix: fmt.Sprintf("/host-%d/", n.Add(1)), RequestTimeout: 30 * time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		return db
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Get(ctx, "/host-1/meta/schema"); err != nil {
		t.Errorf("the host's client was closed by a store: %v", err)
	}
}

// TestBatching: reads and guarded writes made at once share transactions
// (fewer than one each), each caller gets its own answer (every code
// redeemed once: each redemption is a read, then a write guarded by it),
// and an etcd whose transactions take fewer operations than a batch
// (--max-txn-ops below its default) still answers every call.
func TestBatching(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxTxnOps uint
	}{{"Default", 0}, {"FewTxnOps", 5}} { // 5: the most one redemption writes (the code, its expiry entry moved, the grant and its entry)
		t.Run(tc.name, func(t *testing.T) {
			etcd := etcdtest.StartWith(t, func(c *embed.Config) {
				if tc.maxTxnOps > 0 {
					c.MaxTxnOps = tc.maxTxnOps
				}
			})
			db, err := etcdstore.Open(etcdstore.Options{Endpoints: []string{etcd.Endpoint}, RequestTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			const n = 40
			storetest.MustCreatePlugin(t, db, "plu1")
			for i := range n {
				storetest.MustCreateCode(t, db, fmt.Sprint("code", i), "plu1", "bse1")
			}
			reads0, writes0 := etcdstore.Transactions(db)
			var wg sync.WaitGroup
			var redeemed, replayed atomic.Int64
			for try := range 2 { // every code twice: one redemption, one replay
				for i := range n {
					wg.Go(func() {
						err := db.RedeemAuthCode(context.Background(), storetest.RedemptionOf(fmt.Sprint("code", i), fmt.Sprint(i, "-", try)))
						switch {
						case err == nil:
							redeemed.Add(1)
						case errors.Is(err, store.ErrCodeReplayed), errors.Is(err, store.ErrInvalidCode):
							replayed.Add(1)
						default:
							t.Errorf("redeem code%d: %v", i, err)
						}
					})
				}
			}
			wg.Wait()
			if redeemed.Load() != n || replayed.Load() != n {
				t.Errorf("%d redeemed and %d refused; want %d each", redeemed.Load(), replayed.Load(), n)
			}
			reads, writes := etcdstore.Transactions(db)
			reads, writes = reads-reads0, writes-writes0
			t.Logf("%d redemptions: %d read and %d write transactions", 2*n, reads, writes)
			if tc.maxTxnOps == 0 && (reads >= 2*n || writes >= 2*n) {
				t.Errorf("%d redemptions took %d read and %d write transactions: not batched", 2*n, reads, writes)
			}
		})
	}
}

// TestRedemptionLeavesOneRecordAndOneEntry: a redeemed code is consumed
// (schema 6): a live pair keeps its grant, which carries the code's hash,
// and the grant's expiry entry, not the code's tombstone and a second
// entry as schema 5 did.
func TestRedemptionLeavesOneRecordAndOneEntry(t *testing.T) {
	c := hostClient(t, etcdtest.Start(t).Endpoint)
	db, err := etcdstore.New(c, etcdstore.Options{Prefix: "/pairs/", RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.MustCreatePlugin(t, db, "plu1")
	const n = 20
	for i := range n {
		name := fmt.Sprint("pair", i)
		storetest.MustCreateCode(t, db, name, "plu1", "bse1")
		if err := db.RedeemAuthCode(context.Background(), storetest.RedemptionOf(name, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for what, want := range map[string]int64{"codes/": 0, "grants/": n, "expiry/": n} {
		resp, err := c.Get(ctx, "/pairs/"+what, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != want {
			t.Errorf("%s holds %d keys after %d redemptions, want %d", what, resp.Count, n, want)
		}
	}
}

// hostClient is an etcd client of the test's own, as a host application
// has, closed when the test ends.
func hostClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

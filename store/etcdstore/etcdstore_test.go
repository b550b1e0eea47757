package etcdstore_test

import (
	"context"
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
	etcd := etcdtest.Start(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	storetest.Run(t, func(tb testing.TB) store.Store {
		db, err := etcdstore.New(c, etcdstore.Options{Prefix: fmt.Sprintf("/host-%d/", n.Add(1))})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		return db
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "/host-1/meta/schema"); err != nil {
		t.Errorf("the host's client was closed by a store: %v", err)
	}
}

// TestBatchedReads: reads made at once share transactions (fewer than one
// each), each caller gets its own records, and an etcd whose transactions
// take fewer operations than a batch (--max-txn-ops below its default)
// still answers every read.
func TestBatchedReads(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxTxnOps uint
	}{{"Default", 0}, {"FewTxnOps", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			etcd := etcdtest.StartWith(t, func(c *embed.Config) {
				if tc.maxTxnOps > 0 {
					c.MaxTxnOps = tc.maxTxnOps
				}
			})
			db, err := etcdstore.Open(etcdstore.Options{Endpoints: []string{etcd.Endpoint}})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			const n = 40
			for i := range n {
				id := fmt.Sprintf("plu%03d", i)
				if err := db.CreatePlugin(context.Background(), store.Plugin{ID: id, Name: id, Scopes: []string{"table|read"}}); err != nil {
					t.Fatal(err)
				}
			}
			before := etcdstore.Transactions(db)
			var wg sync.WaitGroup
			for round := range 5 {
				for i := range n {
					wg.Go(func() {
						id := fmt.Sprintf("plu%03d", (i+round)%n)
						p, err := db.Plugin(context.Background(), id)
						if err != nil || p.ID != id || p.Name != id {
							t.Errorf("Plugin(%s) = %+v, %v", id, p, err)
						}
					})
				}
			}
			wg.Wait()
			if sent := etcdstore.Transactions(db) - before; tc.maxTxnOps == 0 && sent >= 5*n {
				t.Errorf("%d reads took %d transactions: not batched", 5*n, sent)
			}
		})
	}
}

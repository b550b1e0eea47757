package etcdstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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

package etcdstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/store/etcdstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// TestConformance runs the suite every backend must pass against a real
// (embedded) etcd; each test gets a prefix of its own.
func TestConformance(t *testing.T) {
	etcd := etcdtest.Start(t)
	var n atomic.Int64
	storetest.Run(t, func(tb testing.TB) storetest.Store {
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

package etcdstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/etcdstore"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// rpcCounter counts the KV calls a client makes and the keys they return.
type rpcCounter struct{ ranges, txns, keys, counted atomic.Int64 }

func (r *rpcCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	switch resp := reply.(type) {
	case *etcdserverpb.RangeResponse:
		r.ranges.Add(1)
		r.keys.Add(int64(len(resp.Kvs)))
		r.counted.Add(resp.Count) // etcd counts the whole range it is asked for
	case *etcdserverpb.TxnResponse:
		r.txns.Add(1)
		for _, op := range resp.Responses {
			if rr := op.GetResponseRange(); rr != nil {
				r.keys.Add(int64(len(rr.Kvs)))
			}
		}
	}
	return err
}

// TestSweepCostsWhatItDeletes: with 2,000 live codes and 100 due, a sweep
// reads about the 100 (through the expiry index) in a few transactions, and
// with none due it reads nothing. It used to read every stored record at
// every sweep, whatever was due.
func TestSweepCostsWhatItDeletes(t *testing.T) {
	etcd := etcdtest.Start(t)
	var rpc rpcCounter
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 30 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(rpc.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db, err := etcdstore.New(c, etcdstore.Options{RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	storetest.MustCreatePlugin(t, db, "plu1")
	t0 := storetest.T0
	for i := range 2100 {
		ttl := time.Hour
		if i%21 == 0 {
			ttl = time.Minute // 100 of them
		}
		k := store.NewKey(t0.Add(time.Duration(i) * time.Millisecond))
		if err := db.CreateAuthCode(ctx, store.AuthCode{Key: k, PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		at      time.Duration
		removed int
	}{{"NothingDue", 30 * time.Second, 0}, {"HundredDue", 2 * time.Minute, 100}, {"NothingDueAfter", 3 * time.Minute, 0}} {
		rpc.ranges.Store(0)
		rpc.txns.Store(0)
		rpc.keys.Store(0)
		rpc.counted.Store(0)
		res, err := db.Sweep(ctx, t0.Add(tc.at))
		if err != nil || res.Codes != tc.removed {
			t.Fatalf("%s: %+v, %v; want %d codes removed", tc.name, res, err, tc.removed)
		}
		keys, calls := rpc.keys.Load(), rpc.ranges.Load()+rpc.txns.Load()
		t.Logf("%s: %d removed, %d keys read in %d calls", tc.name, res.Codes, keys, calls)
		if keys > int64(2*tc.removed+10) {
			t.Errorf("%s: the sweep read %d keys to remove %d of 2,100", tc.name, keys, tc.removed)
		}
		if counted := rpc.counted.Load(); counted > int64(3*tc.removed+10) {
			t.Errorf("%s: etcd counted %d keys in the ranges the sweep read, to remove %d", tc.name, counted, tc.removed)
		}
		if calls > int64(tc.removed/10+6) {
			t.Errorf("%s: %d calls to remove %d: not batched", tc.name, calls, tc.removed)
		}
	}
}

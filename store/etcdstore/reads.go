package etcdstore

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxBatchOps bounds the reads one batch sends in one transaction: etcd's
// default --max-txn-ops (an etcd set lower is found out: see batcher).
const maxBatchOps = 128

// readsInFlight bounds the read batches out at once: while one is, the next
// reads gather for the next one. One measured best (against 2 and 4, in two
// runs each of plugintoken-bench on etcd: 6% more exchanges and
// introspections a second than with 4): batches are larger and etcd, on the
// same machine, is the bound.
const readsInFlight = 1

// reads batches reads: the reads that callers ask for while batches are
// in flight go together in the next one, as one etcd transaction (one round
// trip and one linearizable read for all of them) rather than one each.
// Each caller reads the state of an instant between its call and its
// return (one transaction is one snapshot). Nothing is kept between
// batches.
type reads struct{ *batcher[*readCall] }

type readCall struct {
	ctx   context.Context
	ops   []clientv3.Op
	resps []*etcdserverpb.ResponseOp
	err   error
	done  chan struct{}
}

func newReads(c *clientv3.Client, timeout time.Duration) reads {
	b := &batcher[*readCall]{
		timeout:  timeout,
		inFlight: readsInFlight,
		size:     func(r *readCall) int { return len(r.ops) },
		gone:     func(r *readCall) bool { return r.ctx.Err() != nil },
	}
	b.send = func(ctx context.Context, batch []*readCall) bool {
		var ops []clientv3.Op
		for _, r := range batch {
			ops = append(ops, r.ops...)
		}
		resp, err := c.Txn(ctx).Then(ops...).Commit()
		if errors.Is(err, rpctypes.ErrTooManyOps) && len(batch) > 1 {
			return true
		}
		i := 0
		for _, r := range batch {
			if err != nil {
				r.err = err
			} else {
				r.resps = resp.Responses[i : i+len(r.ops)]
			}
			i += len(r.ops)
			close(r.done)
		}
		return false
	}
	b.limit.Store(maxBatchOps)
	return reads{b}
}

// do runs ops (reads only) in one snapshot, with other callers' reads, and
// returns their responses in order.
func (r reads) do(ctx context.Context, ops ...clientv3.Op) ([]*etcdserverpb.ResponseOp, error) {
	call := &readCall{ctx: ctx, ops: ops, done: make(chan struct{})}
	r.add(call)
	if err := wait(ctx, call.done); err != nil {
		return nil, err
	}
	return call.resps, call.err
}

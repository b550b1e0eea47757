package etcdstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxBatchOps bounds the reads one batch sends in one transaction: etcd's
// default --max-txn-ops (an etcd set lower is found out: see send).
const maxBatchOps = 128

// inFlight bounds the batches sent at once: while they are out, the next
// reads gather for the next one.
const inFlight = 4

// reads batches reads: the reads that callers ask for while batches are
// in flight go together in the next one, as one etcd transaction (one round
// trip and one linearizable read for all of them) rather than one each.
// Each caller still reads the state of an instant between its call and its
// return: its batch is sent after it asked and answered before it returns,
// and one transaction is one snapshot. Nothing is kept between batches.
type reads struct {
	c       *clientv3.Client
	timeout time.Duration

	mu      sync.Mutex
	queue   []*readCall
	running int // batches being gathered or in flight (at most inFlight)

	// limit is the most reads a batch sends: maxBatchOps, lowered to what
	// the etcd takes when it refuses a batch as too many operations.
	limit atomic.Int64
	// sent counts the transactions sent (for tests).
	sent atomic.Int64
}

func newReads(c *clientv3.Client, timeout time.Duration) *reads {
	r := &reads{c: c, timeout: timeout}
	r.limit.Store(maxBatchOps)
	return r
}

type readCall struct {
	ops   []clientv3.Op
	resps []*etcdserverpb.ResponseOp
	err   error
	done  chan struct{}
}

// do runs ops (reads only) in one snapshot, with other callers' reads, and
// returns their responses in order.
func (r *reads) do(ctx context.Context, ops ...clientv3.Op) ([]*etcdserverpb.ResponseOp, error) {
	call := &readCall{ops: ops, done: make(chan struct{})}
	r.mu.Lock()
	r.queue = append(r.queue, call)
	start := r.running < inFlight
	if start {
		r.running++
	}
	r.mu.Unlock()
	if start {
		go r.run()
	}
	select {
	case <-call.done:
		return call.resps, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batches until no caller waits.
func (r *reads) run() {
	for {
		r.mu.Lock()
		n, ops, limit := 0, 0, int(r.limit.Load())
		for n < len(r.queue) && (n == 0 || ops+len(r.queue[n].ops) <= limit) {
			ops += len(r.queue[n].ops)
			n++
		}
		if n == 0 {
			r.running--
			r.mu.Unlock()
			return
		}
		batch := r.queue[:n:n]
		r.queue = r.queue[n:]
		if len(r.queue) == 0 {
			r.queue = nil // let the old backing array go
		}
		r.mu.Unlock()
		r.send(batch, ops)
	}
}

func (r *reads) send(batch []*readCall, n int) {
	ops := make([]clientv3.Op, 0, n)
	for _, c := range batch {
		ops = append(ops, c.ops...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	r.sent.Add(1)
	resp, err := r.c.Txn(ctx).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) && len(batch) > 1 {
		// An etcd configured below the default (--max-txn-ops): from now
		// on, batches at most half this size; this one in such pieces.
		limit := min(r.limit.Load(), int64(max(1, n/2)))
		r.limit.Store(limit)
		for len(batch) > 0 {
			k, ops := 0, 0
			for k < len(batch) && (k == 0 || int64(ops+len(batch[k].ops)) <= limit) {
				ops += len(batch[k].ops)
				k++
			}
			r.send(batch[:k], ops)
			batch = batch[k:]
		}
		return
	}
	i := 0
	for _, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.resps = resp.Responses[i : i+len(c.ops)]
		}
		i += len(c.ops)
		close(c.done)
	}
}

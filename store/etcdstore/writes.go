package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxBatchWrites bounds the guarded writes one batch carries (each is one
// operation of the batch's transaction: a nested transaction).
const maxBatchWrites = 64

// maxBatchable bounds the compares, and the operations, of a write that
// goes in a batch; a bigger one (a sweep's page of deletes) goes alone.
const maxBatchable = 16

// writes batches guarded writes, as the bbolt backend's group commit does:
// the writes callers ask for while a batch is in flight go together in the
// next one, as one etcd transaction of nested transactions (one round trip
// and one raft entry for all of them), each nested transaction with its own
// compares, so each write still happens only if what it read is unchanged.
//
// A batch never holds two writes that touch each other's keys: none writes
// a key another writes or compares. So every compare of a batch sees the
// state before the batch and after it alike (etcd evaluates all of them
// first), and the batch is the same as its writes one after the other, in
// any order: each caller's write happens, or not, at one instant between
// its call and its return, as alone.
type writes struct {
	*batcher[*writeCall]
	c *clientv3.Client
}

func newWrites(c *clientv3.Client, timeout time.Duration) writes {
	b := &batcher[*writeCall]{
		timeout:  timeout,
		inFlight: 1,
		size:     func(*writeCall) int { return 1 }, // one nested transaction
		gone:     func(w *writeCall) bool { return w.ctx.Err() != nil },
		// A write waits behind an earlier one it conflicts with, too.
		compatible: func(c *writeCall, batch, waiting []*writeCall) bool {
			for _, d := range batch {
				if c.conflicts(d) {
					return false
				}
			}
			for _, d := range waiting {
				if c.conflicts(d) {
					return false
				}
			}
			return true
		},
		send: sendWrites(c),
	}
	b.limit.Store(maxBatchWrites)
	return writes{batcher: b, c: c}
}

type writeCall struct {
	ctx  context.Context
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	// reads and writes are the key ranges the call compares and writes.
	reads, writes []keyRange
	ok            bool
	err           error
	done          chan struct{}
}

// keyRange is [from, to), or the key from alone when to is nil.
type keyRange struct{ from, to []byte }

func (a keyRange) end() []byte {
	if a.to == nil {
		return append(append([]byte(nil), a.from...), 0)
	}
	return a.to
}

func (a keyRange) overlaps(b keyRange) bool {
	return bytes.Compare(a.from, b.end()) < 0 && bytes.Compare(b.from, a.end()) < 0
}

func anyOverlap(as, bs []keyRange) bool {
	for _, a := range as {
		for _, b := range bs {
			if a.overlaps(b) {
				return true
			}
		}
	}
	return false
}

// conflicts reports whether c and d may not share a batch.
func (c *writeCall) conflicts(d *writeCall) bool {
	return anyOverlap(c.writes, d.writes) || anyOverlap(c.writes, d.reads) || anyOverlap(c.reads, d.writes)
}

// newWriteCall describes a write, or returns nil for one that goes alone
// (too big, or with an operation it cannot place).
func newWriteCall(cmps []clientv3.Cmp, ops []clientv3.Op) *writeCall {
	if len(cmps) > maxBatchable || len(ops) > maxBatchable {
		return nil
	}
	c := &writeCall{cmps: cmps, ops: ops, done: make(chan struct{})}
	for i := range cmps {
		pc := cmps[i].GetCompare()
		c.reads = append(c.reads, keyRange{pc.Key, nonEmpty(pc.RangeEnd)})
	}
	for _, op := range ops {
		if !op.IsPut() && !op.IsDelete() {
			return nil
		}
		c.writes = append(c.writes, keyRange{op.KeyBytes(), nonEmpty(op.RangeBytes())})
	}
	return c
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// do writes ops if cmps hold, with other callers' writes, and reports
// whether they held.
func (w writes) do(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	call := newWriteCall(cmps, ops)
	if call == nil {
		resp, err := w.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return false, err
		}
		return resp.Succeeded, nil
	}
	call.ctx = ctx
	w.add(call)
	if err := wait(ctx, call.done); err != nil {
		// A batch may have carried the write already (else none will):
		// its outcome is unknown, as that of a transaction whose answer
		// did not come.
		return false, err
	}
	return call.ok, call.err
}

// sendWrites sends a batch of writes: one alone as itself, more as nested
// transactions of one.
func sendWrites(c *clientv3.Client) func(context.Context, []*writeCall) bool {
	return func(ctx context.Context, batch []*writeCall) bool {
		var ok []bool
		var err error
		if len(batch) == 1 {
			var resp *clientv3.TxnResponse
			if resp, err = c.Txn(ctx).If(batch[0].cmps...).Then(batch[0].ops...).Commit(); err == nil {
				ok = []bool{resp.Succeeded}
			}
		} else {
			ops := make([]clientv3.Op, len(batch))
			for i, w := range batch {
				ops[i] = clientv3.OpTxn(w.cmps, w.ops, nil)
			}
			var resp *clientv3.TxnResponse
			resp, err = c.Txn(ctx).Then(ops...).Commit()
			if errors.Is(err, rpctypes.ErrTooManyOps) {
				return true
			}
			if err == nil {
				for _, r := range resp.Responses {
					ok = append(ok, r.GetResponseTxn().GetSucceeded())
				}
			}
		}
		for i, w := range batch {
			if err != nil {
				w.err = err
			} else {
				w.ok = ok[i]
			}
			close(w.done)
		}
		return false
	}
}

package etcdstore

import (
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
		chooser:  func() chooser[*writeCall] { return &writeChooser{} },
		send:     sendWrites(c),
	}
	b.limit.Store(maxBatchWrites)
	return writes{batcher: b, c: c}
}

type writeCall struct {
	ctx  context.Context
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	// reads are the keys the call compares; writes the keys it puts or
	// deletes; ranges the key ranges it deletes.
	reads, writes []string
	ranges        []keyRange
	ok            bool
	err           error
	done          chan struct{}
}

// keyRange is [from, to).
type keyRange struct{ from, to string }

func (a keyRange) holds(k string) bool { return a.from <= k && k < a.to }

func (a keyRange) overlaps(b keyRange) bool { return a.from < b.to && b.from < a.to }

// keyIndex holds the keys of the writes in a batch (or waiting before
// one), so that a write's conflict with all of them is a few map reads.
type keyIndex struct {
	reads, writes map[string]struct{}
	ranges        []keyRange
}

func (x *keyIndex) add(c *writeCall) {
	if x.reads == nil {
		x.reads, x.writes = map[string]struct{}{}, map[string]struct{}{}
	}
	for _, k := range c.reads {
		x.reads[k] = struct{}{}
	}
	for _, k := range c.writes {
		x.writes[k] = struct{}{}
	}
	x.ranges = append(x.ranges, c.ranges...)
}

// touches reports whether c conflicts with any write in x.
func (x *keyIndex) touches(c *writeCall) bool {
	if x.reads == nil {
		return false
	}
	inRanges := func(k string) bool {
		for _, r := range x.ranges {
			if r.holds(k) {
				return true
			}
		}
		return false
	}
	for _, k := range c.writes {
		if _, ok := x.writes[k]; ok {
			return true
		}
		if _, ok := x.reads[k]; ok || inRanges(k) {
			return true
		}
	}
	for _, k := range c.reads {
		if _, ok := x.writes[k]; ok || inRanges(k) {
			return true
		}
	}
	// A ranged delete (a family's revocation) is rare: compare it with
	// everything.
	for _, r := range c.ranges {
		for _, other := range x.ranges {
			if r.overlaps(other) {
				return true
			}
		}
		for k := range x.writes {
			if r.holds(k) {
				return true
			}
		}
		for k := range x.reads {
			if r.holds(k) {
				return true
			}
		}
	}
	return false
}

// writeChooser chooses a batch of writes: a write joins when it touches
// neither the writes already in the batch nor those left waiting before it
// (a write waits behind an earlier one it conflicts with, too).
type writeChooser struct{ batch, waiting keyIndex }

func (w *writeChooser) join(c *writeCall) bool {
	if w.batch.touches(c) || w.waiting.touches(c) {
		return false
	}
	w.batch.add(c)
	return true
}

func (w *writeChooser) wait(c *writeCall) { w.waiting.add(c) }

// newWriteCall describes a write, or returns nil for one that goes alone
// (too big, comparing a range of keys, or with an operation it cannot
// place).
func newWriteCall(cmps []clientv3.Cmp, ops []clientv3.Op) *writeCall {
	if len(cmps) > maxBatchable || len(ops) > maxBatchable {
		return nil
	}
	c := &writeCall{cmps: cmps, ops: ops, done: make(chan struct{})}
	for i := range cmps {
		pc := cmps[i].GetCompare()
		if len(pc.RangeEnd) > 0 {
			return nil
		}
		c.reads = append(c.reads, string(pc.Key))
	}
	for _, op := range ops {
		switch {
		case !op.IsPut() && !op.IsDelete():
			return nil
		case len(op.RangeBytes()) > 0:
			c.ranges = append(c.ranges, keyRange{string(op.KeyBytes()), string(op.RangeBytes())})
		default:
			c.writes = append(c.writes, string(op.KeyBytes()))
		}
	}
	return c
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

package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
	c       *clientv3.Client
	timeout time.Duration

	mu      sync.Mutex
	queue   []*writeCall
	running bool

	// limit is the most writes a batch carries: maxBatchWrites, lowered to
	// what the etcd takes when it refuses a batch as too many operations.
	limit atomic.Int64
	// sent counts the transactions sent (for tests).
	sent atomic.Int64
}

func newWrites(c *clientv3.Client, timeout time.Duration) *writes {
	w := &writes{c: c, timeout: timeout}
	w.limit.Store(maxBatchWrites)
	return w
}

type writeCall struct {
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
func (w *writes) do(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	call := newWriteCall(cmps, ops)
	if call == nil {
		resp, err := w.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return false, err
		}
		return resp.Succeeded, nil
	}
	w.mu.Lock()
	w.queue = append(w.queue, call)
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
	select {
	case <-call.done:
		return call.ok, call.err
	case <-ctx.Done():
		// The batch may still carry the write: its outcome is unknown, as
		// that of a transaction whose answer did not come.
		return false, ctx.Err()
	}
}

// run sends batches until no caller waits.
func (w *writes) run() {
	for {
		w.mu.Lock()
		limit := int(w.limit.Load())
		var batch, rest []*writeCall
		for _, c := range w.queue {
			fits := len(batch) < limit
			for _, b := range batch {
				if !fits {
					break
				}
				fits = !c.conflicts(b)
			}
			// A call that waits keeps its place before later ones that
			// conflict with it: they wait too.
			for _, r := range rest {
				if !fits {
					break
				}
				fits = !c.conflicts(r)
			}
			if fits {
				batch = append(batch, c)
			} else {
				rest = append(rest, c)
			}
		}
		w.queue = rest
		if len(batch) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.send(batch)
	}
}

func (w *writes) send(batch []*writeCall) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	w.sent.Add(1)
	if len(batch) == 1 {
		c := batch[0]
		resp, err := w.c.Txn(ctx).If(c.cmps...).Then(c.ops...).Commit()
		if err == nil {
			c.ok = resp.Succeeded
		}
		c.err = err
		close(c.done)
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, c := range batch {
		ops[i] = clientv3.OpTxn(c.cmps, c.ops, nil)
	}
	resp, err := w.c.Txn(ctx).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		// An etcd configured below the default (--max-txn-ops): from now
		// on, batches at most half this size; this one in two.
		half := len(batch) / 2
		w.limit.Store(int64(min(int(w.limit.Load()), max(1, half))))
		w.send(batch[:half])
		w.send(batch[half:])
		return
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.ok = resp.Responses[i].GetResponseTxn().GetSucceeded()
		}
		close(c.done)
	}
}

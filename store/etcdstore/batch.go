package etcdstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// batcher gathers the calls made while batches are in flight into the next
// batch, as the bbolt backend's group commit does: under load a batch is
// whatever arrived while the previous ones were out, and a lone call goes at
// once. Each call is sent after it was made and answered before its caller
// returns, so what its batch's transaction does for it happens between the
// two. reads and writes are its two uses.
type batcher[C any] struct {
	timeout  time.Duration
	inFlight int
	// size is how many operations a call adds to a batch's transaction.
	size func(C) int
	// chooser, when set, makes a chooser for each batch, which says which
	// calls may share it.
	chooser func() chooser[C]
	// gone says whether a call's caller has stopped waiting (its context
	// ended): such a call is dropped unsent, so that an etcd slower than
	// the callers' patience is not sent what nobody waits for, and a write
	// given up on does not happen later.
	gone func(C) bool
	// send sends a batch as one transaction and answers every call in it,
	// except when the etcd refused it as too many operations (tooMany),
	// which for a batch of one call is an answer like any error.
	send func(ctx context.Context, batch []C) (tooMany bool)

	mu      sync.Mutex
	queue   []C
	running int // batches being gathered or in flight (at most inFlight)

	// limit is the most operations a batch's transaction carries, lowered
	// to what the etcd takes when it refuses a batch as too many
	// (--max-txn-ops below its default).
	limit atomic.Int64
	// sent counts the transactions sent (for tests).
	sent atomic.Int64
}

// add queues a call; a batch carries it soon.
func (b *batcher[C]) add(call C) {
	b.mu.Lock()
	b.queue = append(b.queue, call)
	start := b.running < b.inFlight
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.run()
	}
}

// run sends batches until no call waits.
func (b *batcher[C]) run() {
	for {
		b.mu.Lock()
		batch, rest := b.take(b.queue, int(b.limit.Load()))
		b.queue = rest
		if len(batch) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.sendWithin(batch)
	}
}

// chooser says which calls may share a batch: join admits a call to the
// batch if it may (and remembers it there); wait remembers a call left
// waiting for a later batch, before the calls that follow it.
type chooser[C any] interface {
	join(C) bool
	wait(C)
}

// take chooses a batch from queue, in order, and returns what waits.
func (b *batcher[C]) take(queue []C, limit int) (batch, rest []C) {
	var ch chooser[C]
	if b.chooser != nil {
		ch = b.chooser()
	}
	n := 0
	for _, c := range queue {
		if b.gone(c) {
			continue
		}
		if (len(batch) == 0 || n+b.size(c) <= limit) && (ch == nil || ch.join(c)) {
			batch = append(batch, c)
			n += b.size(c)
			continue
		}
		if ch != nil {
			ch.wait(c)
		}
		rest = append(rest, c)
	}
	return batch, rest
}

// sendWithin sends a batch; one the etcd refuses as too many operations
// lowers the limit to half its size, and goes again in such pieces.
func (b *batcher[C]) sendWithin(batch []C) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	b.sent.Add(1)
	if !b.send(ctx, batch) || len(batch) < 2 {
		return
	}
	n := 0
	for _, c := range batch {
		n += b.size(c)
	}
	limit := min(b.limit.Load(), int64(max(1, n/2)))
	b.limit.Store(limit)
	for len(batch) > 0 {
		var piece []C
		piece, batch = b.take(batch, int(limit))
		b.sendWithin(piece)
	}
}

// wait waits for a call's answer, or for the caller's ctx to end.
func wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

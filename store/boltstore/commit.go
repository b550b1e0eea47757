package boltstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes submitted after Close.
var ErrClosed = errors.New("store: closed")

// committer is a group commit: one goroutine runs every write that is
// waiting in one bbolt transaction and one fsync, and while that commit is on
// disk the next writes queue up for the following one. Unlike bbolt's
// DB.Batch it never waits on a timer: under load a batch is whatever arrived
// during the previous commit, and a lone write commits at once.
type committer struct {
	// update runs a function in a write transaction of its own.
	update   func(func(*bolt.Tx) error) error
	maxBatch int
	delay    time.Duration

	// commits and writes count transactions and the calls they carried.
	commits, writes atomic.Int64

	mu      sync.Mutex
	queue   []*commitCall
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

type commitCall struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// errRunSolo tells a call that failed inside a batch to run alone.
var errRunSolo = errors.New("store: run solo")

func newCommitter(update func(func(*bolt.Tx) error) error, maxBatch int, delay time.Duration) *committer {
	c := &committer{update: update, maxBatch: maxBatch, delay: delay,
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go c.loop()
	return c
}

// do runs fn in a shared write transaction and returns when it is on disk.
// fn may run more than once (when another call of its batch fails, the batch
// is rolled back and run again without that call), so it must depend only on
// its arguments and tx.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	call := &commitCall{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.queue = append(c.queue, call)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	err := <-call.done
	if err == errRunSolo {
		err = c.update(fn)
	}
	return err
}

// close lets queued writes finish and stops the loop.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.stopped
}

func (c *committer) loop() {
	defer close(c.stopped)
	for range c.wake {
		for {
			if c.delay > 0 {
				time.Sleep(c.delay)
			}
			c.mu.Lock()
			n := min(len(c.queue), c.maxBatch)
			batch := c.queue[:n:n]
			c.queue = c.queue[n:]
			if len(c.queue) == 0 {
				c.queue = nil // let the old backing array go
			}
			closed := c.closed && n == 0
			c.mu.Unlock()
			if closed {
				return
			}
			if n == 0 {
				break
			}
			c.run(batch)
		}
	}
}

// run commits a batch. A call whose fn fails is taken out, told to run
// solo, and the rest is run again, as bbolt's DB.Batch does.
func (c *committer) run(batch []*commitCall) {
	for len(batch) > 0 {
		failed := -1
		err := c.update(func(tx *bolt.Tx) error {
			for i, call := range batch {
				if err := safely(call.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].done <- errRunSolo
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		if err == nil {
			c.commits.Add(1)
			c.writes.Add(int64(len(batch)))
		}
		for _, call := range batch {
			call.done <- err
		}
		return
	}
}

// safely runs fn, turning a panic into an error so that one bad call cannot
// take the batch (and the process) down.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: panic in transaction: %v", p)
		}
	}()
	return fn(tx)
}

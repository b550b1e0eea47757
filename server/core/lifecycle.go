package core

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// DefaultSweepInterval is how often Run deletes expired records when
// Config.SweepInterval is zero.
const DefaultSweepInterval = time.Minute

// Worker is implemented by stores with background work of their own (an
// etcd store compacting its history, say): Run runs it next to the
// sweeper, until ctx is done, and then returns nil.
type Worker interface {
	Run(ctx context.Context) error
}

// lifecycle is what Run started and Close stops.
type lifecycle struct {
	mu      sync.Mutex
	running bool
	stop    context.CancelFunc
	done    chan struct{}
	closed  bool
	closeFn sync.Once
	err     error
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("core: service closed")

// Run does the service's background work until ctx is done, then returns
// nil: it deletes expired codes, tokens and tombstones every
// Config.SweepInterval (so the store does not grow without bound), and runs
// the store's own work when it has some (Worker). A host starts it once,
// next to its HTTP server, and Close stops it: a gateway writes no upkeep of
// its own. A second Run while one is running is an error, and so is Run
// after Close.
func (s *Service) Run(ctx context.Context) error {
	lc := &s.lifecycle
	lc.mu.Lock()
	switch {
	case lc.closed:
		lc.mu.Unlock()
		return ErrClosed
	case lc.running:
		lc.mu.Unlock()
		return errors.New("core: Run is already running")
	}
	ctx, stop := context.WithCancel(ctx)
	lc.running, lc.stop, lc.done = true, stop, make(chan struct{})
	lc.mu.Unlock()
	defer func() {
		stop()
		lc.mu.Lock()
		lc.running = false
		close(lc.done)
		lc.mu.Unlock()
	}()

	var wg sync.WaitGroup
	var workErr error
	if w, ok := s.store.(Worker); ok {
		wg.Go(func() { workErr = w.Run(ctx) })
	}
	if s.sweepEvery > 0 {
		wg.Go(func() { _ = s.RunSweeper(ctx, s.sweepEvery) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return workErr
}

// Close stops Run (and waits for it to return) and then closes the store,
// when it has a Close method: the store is the service's from New on. With
// boltstore.OpenDB this leaves the host's *bbolt.DB open, for the host to
// close after. Close is safe to call more than once; later calls return the
// first one's result.
func (s *Service) Close() error {
	lc := &s.lifecycle
	lc.closeFn.Do(func() {
		lc.mu.Lock()
		lc.closed = true
		stop, done := lc.stop, lc.done
		running := lc.running
		lc.mu.Unlock()
		if running {
			stop()
			<-done
		}
		if c, ok := s.store.(io.Closer); ok {
			lc.err = c.Close()
		}
	})
	return lc.err
}

package etcdstore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

type fakeCall struct {
	ctx  context.Context
	name string
	done chan struct{}
}

// TestBatcherDropsCallsNobodyWaitsFor: a call whose caller stopped waiting
// before its batch left is not sent (a write given up on must not happen
// later), and the calls made while a batch is out go together in the next.
func TestBatcherDropsCallsNobodyWaitsFor(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sent [][]string
	b := &batcher[*fakeCall]{
		timeout:  time.Second,
		inFlight: 1,
		size:     func(*fakeCall) int { return 1 },
		gone:     func(c *fakeCall) bool { return c.ctx.Err() != nil },
		send: func(_ context.Context, batch []*fakeCall) bool {
			var names []string
			for _, c := range batch {
				names = append(names, c.name)
			}
			mu.Lock()
			sent = append(sent, names)
			first := len(sent) == 1
			mu.Unlock()
			if first {
				<-release // the first batch is out while the others queue
			}
			for _, c := range batch {
				close(c.done)
			}
			return false
		},
	}
	b.limit.Store(maxBatchOps)
	call := func(ctx context.Context, name string) *fakeCall {
		c := &fakeCall{ctx: ctx, name: name, done: make(chan struct{})}
		b.add(c)
		return c
	}
	a := call(context.Background(), "a")
	for !func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 1 }() {
		time.Sleep(time.Millisecond)
	}
	gaveUp, cancel := context.WithCancel(context.Background())
	call(gaveUp, "gave-up")
	c1 := call(context.Background(), "b")
	c2 := call(context.Background(), "c")
	cancel()
	close(release)
	for _, c := range []*fakeCall{a, c1, c2} {
		<-c.done
	}
	mu.Lock()
	defer mu.Unlock()
	if want := [][]string{{"a"}, {"b", "c"}}; !slices.EqualFunc(sent, want, slices.Equal[[]string]) {
		t.Errorf("batches sent: %v, want %v", sent, want)
	}
}

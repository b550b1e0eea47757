package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// closeCounter is a store whose Close is counted.
type closeCounter struct {
	*boltstore.DB
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return c.DB.Close() }

// TestRunAndClose: Run sweeps until its context ends; a second Run is an
// error; Close stops a running Run, closes the store once however often it
// is called, and Run after Close is ErrClosed.
func TestRunAndClose(t *testing.T) {
	db, err := boltstore.Open(t.TempDir()+"/db", boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &closeCounter{DB: db}
	obs := &sweepCounter{}
	svc, err := core.New(core.Config{Store: st, AuthCodeTTL: 50 * time.Millisecond, SweepInterval: 20 * time.Millisecond, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := svc.CreatePlugin(ctx, "Chart", []string{"table|read"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.IssueAuthCode(ctx, p.ID, "bseA", ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for obs.codes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep the expired code within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := svc.Run(ctx); err == nil || errors.Is(err, core.ErrClosed) {
		t.Errorf("a second Run while one runs: %v, want an error", err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run after Close stopped it: %v, want nil", err)
	}
	if err := svc.Close(); err != nil || st.closed != 1 {
		t.Errorf("second Close: %v, store closed %d times, want once", err, st.closed)
	}
	if err := svc.Run(ctx); !errors.Is(err, core.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	var _ store.Store = st
}

// sweepCounter counts the auth codes the service's sweeper has deleted.
type sweepCounter struct{ codes atomic.Int64 }

func (*sweepCounter) Observe(core.Event)      {}
func (c *sweepCounter) Swept(codes, _, _ int) { c.codes.Add(int64(codes)) }

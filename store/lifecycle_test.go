package store_test

import (
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// TestConformance runs the suite every backend must pass against bbolt.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) storetest.Store { return MustOpen(tb) })
}

// TestSweepInChunks sweeps more records than one sweep transaction takes.
func TestSweepInChunks(t *testing.T) {
	db := MustOpen(t)
	mustCreatePlugin(t, db, "plu1")
	const n = 2500
	for i := range n {
		mustCreateCode(t, db, "c"+string(rune(i+0x4e00)), "plu1", "bse1")
	}
	res, err := db.Sweep(ctx, t0.Add(time.Hour))
	if err != nil || res.Codes != n {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	if _, err := db.AuthCode(ctx, ref("c"+string(rune(0x4e00))).Key); err != store.ErrNotFound {
		t.Errorf("swept code still there: %v", err)
	}
}

package core

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterEvictsLeastRecentlyUsed floods the limiter with more failing
// keys than it remembers: the keys evicted are the quiet ones, and a key
// that keeps failing keeps its spent budget (it used to be wiped with every
// other key once 100k keys had failed: failing open).
func TestLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l := newFailureLimiter(3, time.Hour, 1000)
	for range 3 {
		if _, over := l.fail("attacker", now); over {
			t.Fatal("refused within the budget")
		}
	}
	for i := range 5000 {
		l.fail("noise-"+strconv.Itoa(i), now)
		if i%100 == 0 { // the attacker keeps going
			if _, over := l.fail("attacker", now); !over {
				t.Fatalf("after %d other keys, the attacker's spent budget was forgotten", i)
			}
		}
	}
	if n := l.size(); n != 1000 {
		t.Errorf("limiter remembers %d keys, want at most 1000", n)
	}
}

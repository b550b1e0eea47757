package etcdstore

import (
	"math/rand/v2"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// conflicts reports whether c and d may not share a batch, as the batch's
// keyIndex decides it.
func (c *writeCall) conflicts(d *writeCall) bool {
	var x keyIndex
	x.add(d)
	return x.touches(c)
}

// TestWritesThatTouchDoNotShareABatch: two writes share a batch only when
// neither writes a key the other writes or compares.
func TestWritesThatTouchDoNotShareABatch(t *testing.T) {
	redeem := func(code, grant string) *writeCall {
		return newWriteCall(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision("p/plugins/plu1"), "=", 3), clientv3.Compare(clientv3.ModRevision("p/codes/"+code), "=", 4)},
			[]clientv3.Op{clientv3.OpPut("p/codes/"+code, "x"), clientv3.OpPut("p/grants/"+grant, "y")})
	}
	setSecret := newWriteCall([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision("p/plugins/plu1"), "=", 3)},
		[]clientv3.Op{clientv3.OpPut("p/plugins/plu1", "z")})
	revokeFamily := newWriteCall(nil, []clientv3.Op{clientv3.OpDelete("p/grants/aa", clientv3.WithPrefix())})
	for _, tc := range []struct {
		name     string
		a, b     *writeCall
		conflict bool
	}{
		{"two codes", redeem("c1", "aa01"), redeem("c2", "bb01"), false},
		{"one code twice", redeem("c1", "aa01"), redeem("c1", "aa02"), true},
		{"a secret changed under a redemption", redeem("c1", "aa01"), setSecret, true},
		{"a family revoked under a redemption into it", redeem("c1", "aa01"), revokeFamily, true},
		{"a family revoked beside another", redeem("c2", "bb01"), revokeFamily, false},
		{"a key and one it prefixes", redeem("c1", "aa01"), redeem("c1x", "cc01"), false},
	} {
		if got := tc.a.conflicts(tc.b); got != tc.conflict || tc.b.conflicts(tc.a) != tc.conflict {
			t.Errorf("%s: conflicts = %v, want %v", tc.name, got, tc.conflict)
		}
	}
	if newWriteCall(nil, []clientv3.Op{clientv3.OpGet("p/x")}) != nil {
		t.Error("a read among the writes is batched")
	}
	big := make([]clientv3.Op, maxBatchable+1)
	for i := range big {
		big[i] = clientv3.OpDelete("p/codes/x")
	}
	if newWriteCall(nil, big) != nil {
		t.Error("a write bigger than maxBatchable is batched")
	}
}

// TestKeyIndexIsThePairwiseRule: the index that chooses a batch answers as
// checking the new write against each write in it, by intervals, would:
// one's written keys or ranges meet the other's written or compared ones.
func TestKeyIndexIsThePairwiseRule(t *testing.T) {
	type interval struct{ from, to string }
	point := func(k string) interval { return interval{k, k + "\x00"} }
	meet := func(as, bs []interval) bool {
		for _, a := range as {
			for _, b := range bs {
				if a.from < b.to && b.from < a.to {
					return true
				}
			}
		}
		return false
	}
	written := func(c *writeCall) []interval {
		var out []interval
		for _, k := range c.writes {
			out = append(out, point(k))
		}
		for _, r := range c.ranges {
			out = append(out, interval(r))
		}
		return out
	}
	compared := func(c *writeCall) []interval {
		var out []interval
		for _, k := range c.reads {
			out = append(out, point(k))
		}
		return out
	}
	pairwise := func(c, d *writeCall) bool {
		return meet(written(c), written(d)) || meet(written(c), compared(d)) || meet(compared(c), written(d))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []string{"p/a", "p/a1", "p/a2", "p/ab", "p/b", "p/b1", "p/c"}
	random := func() *writeCall {
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for range rng.IntN(3) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[rng.IntN(len(keys))]), "=", 1))
		}
		for range 1 + rng.IntN(2) {
			if rng.IntN(5) == 0 {
				ops = append(ops, clientv3.OpDelete(keys[rng.IntN(len(keys))], clientv3.WithPrefix()))
			} else {
				ops = append(ops, clientv3.OpPut(keys[rng.IntN(len(keys))], "v"))
			}
		}
		return newWriteCall(cmps, ops)
	}
	for range 5000 {
		var x keyIndex
		var in []*writeCall
		for range rng.IntN(4) {
			d := random()
			x.add(d)
			in = append(in, d)
		}
		c := random()
		want := false
		for _, d := range in {
			want = want || pairwise(c, d)
		}
		if got := x.touches(c); got != want {
			t.Fatalf("index says %v, pairwise %v: %+v against %+v", got, want, c, in)
		}
	}
}

package etcdstore

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

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

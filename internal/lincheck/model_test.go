package lincheck

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// op is a completed operation of family "c" for hand-written histories.
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	in.Family = "c"
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

var (
	redeemOK   = Output{OK: true, Access: "pta_A1", Refresh: "ptr_R1"}
	refreshOK2 = Output{OK: true, Access: "pta_A2", Refresh: "ptr_R2"}
	refreshOK3 = Output{OK: true, Access: "pta_A3", Refresh: "ptr_R3"}
	invalid    = Output{}
	active     = Output{Active: true}
	inactive   = Output{}
	revoked    = Output{OK: true}
	unknown    = Output{Unknown: true}
)

// TestModel pins the specification on small histories, among them one of
// each kind of defect the checker exists to catch.
func TestModel(t *testing.T) {
	for name, tc := range map[string]struct {
		ops  []porcupine.Operation
		want bool
	}{
		"SequentialLifecycle": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(0, 2, 3, Input{Op: Introspect, Token: "pta_A1"}, active),
			op(0, 4, 5, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK2),
			op(0, 6, 7, Input{Op: Introspect, Token: "pta_A1"}, inactive),
			op(0, 8, 9, Input{Op: Revoke, Token: "pta_A2"}, revoked),
			op(0, 10, 11, Input{Op: Introspect, Token: "pta_A2"}, inactive),
			op(0, 12, 13, Input{Op: Refresh, Token: "ptr_R2"}, refreshOK3),
			op(0, 14, 15, Input{Op: Redeem, Token: "code"}, invalid), // replay
			op(0, 16, 17, Input{Op: Introspect, Token: "pta_A3"}, inactive),
		}, true},
		// The refresh race: two concurrent refreshes of one token both win.
		"DoubleRefreshWinner": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(0, 2, 5, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK2),
			op(1, 3, 6, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK3),
		}, false},
		"ConcurrentRefreshOneWinsFamilyRevoked": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(0, 2, 5, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK2),
			op(1, 3, 6, Input{Op: Refresh, Token: "ptr_R1"}, invalid),
			op(1, 7, 8, Input{Op: Introspect, Token: "pta_A2"}, inactive),
		}, true},
		// Revoking a rotated refresh token leaves its descendant active.
		"RevokeRotatedLeavesDescendant": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(0, 2, 3, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK2),
			op(0, 4, 5, Input{Op: Revoke, Token: "ptr_R1"}, revoked),
			op(0, 6, 7, Input{Op: Introspect, Token: "pta_A2"}, active),
		}, false},
		// Stale introspection: a replay's revocation was seen by another
		// request, then introspection still says active.
		"StaleIntrospectionAfterReplay": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(1, 2, 4, Input{Op: Redeem, Token: "code"}, invalid),
			op(2, 3, 5, Input{Op: Refresh, Token: "ptr_R1"}, invalid), // saw the family revoked
			op(0, 6, 7, Input{Op: Introspect, Token: "pta_A1"}, active),
		}, false},
		"UnknownRefreshMayHaveHappened": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(1, 2, 1<<40, Input{Op: Refresh, Token: "ptr_R1"}, unknown),
			op(0, 3, 4, Input{Op: Introspect, Token: "pta_A1"}, active),
			op(0, 5, 6, Input{Op: Introspect, Token: "pta_A1"}, inactive),
		}, true},
		"RevivedAfterRevocation": {[]porcupine.Operation{
			op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
			op(0, 2, 3, Input{Op: Revoke, Token: "pta_A1"}, revoked),
			op(0, 4, 5, Input{Op: Introspect, Token: "pta_A1"}, active),
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := porcupine.CheckOperations(Model.ToModel(), tc.ops); got != tc.want {
				t.Errorf("linearizable = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMinimize: the minimal set of a failing history keeps the operations
// that cannot all hold and drops the rest.
func TestMinimize(t *testing.T) {
	h := History{Ops: []porcupine.Operation{
		op(0, 0, 1, Input{Op: Redeem, Token: "code"}, redeemOK),
		op(3, 1, 2, Input{Op: Introspect, Token: "pta_A1"}, active),
		op(0, 2, 5, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK2),
		op(1, 3, 6, Input{Op: Refresh, Token: "ptr_R1"}, refreshOK3),
		op(2, 7, 8, Input{Op: Introspect, Token: "pta_A2"}, active),
		op(2, 9, 10, Input{Op: Introspect, Token: "pta_A3"}, active),
	}}
	r, err := Check(h, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result == porcupine.Ok || r.FailingFamilies != 1 {
		t.Fatalf("report: %s", r)
	}
	if len(r.Minimal) != 1 || len(r.Minimal[0]) != 3 {
		t.Errorf("minimal set has %d operations, want the redemption and the two refreshes:\n%s", len(r.Minimal[0]), r)
	}
}

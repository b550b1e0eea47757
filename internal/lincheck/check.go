package lincheck

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is the verdict on a history.
type Report struct {
	Result porcupine.CheckResult
	// FailingFamilies counts the families whose histories are not
	// linearizable.
	FailingFamilies int
	// Minimal holds, for up to three failing families (the shortest), the
	// operations that cannot all hold (see minimize).
	Minimal [][]porcupine.Operation
	// Visualization is the file porcupine's visualization was written to.
	Visualization string
}

// Check checks a history family by family (families are independent, and
// checking them one at a time keeps memory to one family's search); when it
// is not linearizable, it finds minimal failing sets and writes porcupine's
// visualization of the failing families to visualization (when not empty).
func Check(h History, visualization string, timeout time.Duration) (Report, error) {
	model := Model.ToModel()
	r := Report{Result: porcupine.Ok}
	var failing []porcupine.Operation
	deadline := time.Now().Add(timeout)
	for _, part := range Model.Partition(h.Ops) {
		left := time.Until(deadline)
		if timeout > 0 && left <= 0 {
			r.Result = porcupine.Unknown
			break
		}
		if timeout <= 0 {
			left = 0
		}
		switch porcupine.CheckOperationsTimeout(model, part, left) {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			r.Result = porcupine.Unknown
			continue
		}
		r.Result = porcupine.Illegal
		r.FailingFamilies++
		failing = append(failing, part...)
		r.Minimal = append(r.Minimal, minimize(model, part))
	}
	if r.Result != porcupine.Illegal {
		return r, nil
	}
	slices.SortFunc(r.Minimal, func(a, b []porcupine.Operation) int { return cmp.Compare(len(a), len(b)) })
	r.Minimal = r.Minimal[:min(3, len(r.Minimal))]
	if visualization != "" {
		_, info := porcupine.CheckOperationsVerbose(model, failing, 0)
		if err := porcupine.VisualizePath(model, info, visualization); err != nil {
			return r, err
		}
		r.Visualization = visualization
	}
	return r, nil
}

// minimize cuts a failing family history down to operations that cannot
// all hold and that the system really could have shown a client: the
// shortest failing prefix (every operation called by some instant, those
// still running then counted as unanswered), then without each
// introspection that the failure does not need. Only reads are dropped: a
// write, even a refused one, may have changed the state (a replay, a
// reuse), and a history without it would fail for no real reason.
func minimize(model porcupine.Model, ops []porcupine.Operation) []porcupine.Operation {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	// The shortest failing prefix: failing is monotone in the cut.
	cut := sort.Search(len(ops), func(n int) bool { return !porcupine.CheckOperations(model, prefix(ops, n+1)) })
	if cut < len(ops) {
		ops = prefix(ops, cut+1)
	}
	for i := 0; i < len(ops); {
		if ops[i].Input.(Input).Op == Introspect {
			without := slices.Delete(slices.Clone(ops), i, i+1)
			if !porcupine.CheckOperations(model, without) {
				ops = without
				continue
			}
		}
		i++
	}
	return ops
}

// prefix is the history as it stood when the n-th call (in call order) was
// made: later calls are left out, and calls not answered by then are
// unanswered.
func prefix(ops []porcupine.Operation, n int) []porcupine.Operation {
	at := ops[n-1].Call
	out := slices.Clone(ops[:n])
	for i, op := range out {
		if op.Return > at {
			out[i].Output, out[i].Return = Output{Unknown: true}, math.MaxInt64/2
		}
	}
	return out
}

// String tells what the report found, with the minimal failing set in
// call order.
func (r Report) String() string {
	var b strings.Builder
	switch r.Result {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Unknown:
		b.WriteString("the checker timed out: no verdict\n")
	default:
		fmt.Fprintf(&b, "NOT linearizable: %d families fail\n", r.FailingFamilies)
	}
	for _, m := range r.Minimal {
		b.WriteString("operations that cannot all hold (call and return in ms from the start; ∞: no answer):\n")
		ops := slices.Clone(m)
		slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
		for _, op := range ops {
			ret := fmt.Sprintf("%.3f", float64(op.Return)/1e6)
			if op.Output.(Output).Unknown {
				ret = "∞"
			}
			fmt.Fprintf(&b, "  client %2d  [%.3f, %s]  %s\n", op.ClientId, float64(op.Call)/1e6, ret,
				Model.DescribeOperation(op.Input, op.Output))
		}
	}
	if r.Visualization != "" {
		fmt.Fprintf(&b, "visualization: %s\n", r.Visualization)
	}
	return b.String()
}

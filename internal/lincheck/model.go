// Package lincheck checks that plugintoken's token state is linearizable:
// clients record, from outside, a history of concurrent operations on token
// families (redeem a code, rotate a refresh token, revoke a token,
// introspect), and porcupine checks it against the sequential specification
// below. It is a module of its own so that no embedder of plugintoken pays
// for porcupine.
//
// The sequential specification, per family (the tokens descended from one
// auth code), with no refresh grace and no expiry during a run:
//
//   - redeem(code): the first redemption answers a new access and refresh
//     token, both live. Any later one (a replay) answers "invalid" and
//     revokes the family: every token of it is dead from then on.
//   - refresh(r): a live refresh token answers a new live pair and kills r
//     and its access token. A refresh token already rotated (reuse) answers
//     "invalid" and revokes the family. Any other token answers "invalid" and
//     changes nothing.
//   - revoke(t): always answers 200. A refresh token (live, rotated or dead)
//     revokes the family; a live access token dies alone; anything else
//     changes nothing.
//   - introspect(t): answers active exactly when t is live.
//
// An operation whose outcome is unknown (a transport error, a 5xx, a
// process killed mid-request) may or may not have taken effect, at any time
// after it was called.
package lincheck

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Op names an operation of the history.
type Op string

// The operations.
const (
	Redeem     Op = "redeem"
	Refresh    Op = "refresh"
	Revoke     Op = "revoke"
	Introspect Op = "introspect"
)

// Input is an operation as called: on which family, presenting which code
// or token.
type Input struct {
	Op     Op
	Family string
	// Token is the code (redeem) or the token presented.
	Token string
}

// Output is what the operation answered.
type Output struct {
	// Unknown: no answer, or one that does not say what happened (5xx).
	Unknown bool
	// OK: redeem and refresh answered a new pair (Access, Refresh); revoke
	// answered 200. Not OK: refused with 4xx.
	OK              bool
	Access, Refresh string
	// Active is introspection's answer.
	Active bool
}

// state is one family's state. It is never modified: steps return copies.
type state struct {
	redeemed bool
	live     map[string]bool   // tokens that are active
	rotated  map[string]bool   // refresh tokens rotated before
	partner  map[string]string // a refresh token's access token
}

func (s *state) clone() *state {
	return &state{redeemed: s.redeemed, live: maps.Clone(s.live), rotated: maps.Clone(s.rotated), partner: maps.Clone(s.partner)}
}

// revokeFamily kills every token of the family.
func (s *state) revokeFamily() *state {
	n := s.clone()
	clear(n.live)
	return n
}

// issue adds a live pair; unknown tokens (an unknown outcome) are not
// added, since no client can present them.
func (s *state) issue(access, refresh string) {
	if access == "" {
		return
	}
	s.live[access], s.live[refresh] = true, true
	s.partner[refresh] = access
}

func isRefresh(token string) bool { return strings.HasPrefix(token, "ptr_") }

// Model is the sequential specification as a porcupine model, partitioned by
// family.
var Model = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byFamily := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			f := op.Input.(Input).Family
			if _, ok := byFamily[f]; !ok {
				order = append(order, f)
			}
			byFamily[f] = append(byFamily[f], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, f := range order {
			out = append(out, byFamily[f])
		}
		return out
	},
	Init: func() []any {
		return []any{&state{live: map[string]bool{}, rotated: map[string]bool{}, partner: map[string]string{}}}
	},
	Step: func(st, in, out any) []any {
		s, i, o := st.(*state), in.(Input), out.(Output)
		next := step(s, i, o)
		res := make([]any, len(next))
		for k, n := range next {
			res[k] = n
		}
		return res
	},
	Equal: func(a, b any) bool { return reflect.DeepEqual(a, b) },
	DescribeOperation: func(in, out any) string {
		i, o := in.(Input), out.(Output)
		var answer string
		switch {
		case o.Unknown:
			answer = "unknown"
		case i.Op == Introspect:
			answer = fmt.Sprintf("active=%v", o.Active)
		case o.OK && o.Access != "":
			answer = "ok " + short(o.Access) + " " + short(o.Refresh)
		case o.OK:
			answer = "ok"
		default:
			answer = "invalid"
		}
		return fmt.Sprintf("%s(%s) -> %s", i.Op, short(i.Token), answer)
	},
	DescribeState: func(st any) string {
		s := st.(*state)
		var live []string
		for t, ok := range s.live {
			if ok {
				live = append(live, short(t))
			}
		}
		slices.Sort(live)
		return fmt.Sprintf("redeemed=%v live=%v", s.redeemed, live)
	},
}

// short abbreviates a token for people to read.
func short(t string) string {
	if len(t) > 12 {
		return t[:4] + "…" + t[len(t)-6:]
	}
	return t
}

// step returns the states the family can be in after operation i answered
// o in state s; none when o is not a possible answer.
func step(s *state, i Input, o Output) []*state {
	if o.Unknown {
		// It may not have happened, or happened with any answer.
		return append([]*state{s}, happen(s, i)...)
	}
	switch i.Op {
	case Redeem:
		switch {
		case !s.redeemed && o.OK && fresh(s, o):
			n := s.clone()
			n.redeemed = true
			n.issue(o.Access, o.Refresh)
			return []*state{n}
		case s.redeemed && !o.OK:
			return []*state{s.revokeFamily()}
		}
	case Refresh:
		switch {
		case s.live[i.Token] && isRefresh(i.Token) && o.OK && fresh(s, o):
			return []*state{rotate(s, i.Token, o.Access, o.Refresh)}
		case !s.live[i.Token] && !o.OK && s.rotated[i.Token]:
			return []*state{s.revokeFamily()}
		case !s.live[i.Token] && !o.OK:
			return []*state{s}
		}
	case Revoke:
		if o.OK {
			return []*state{revoke(s, i.Token)}
		}
	case Introspect:
		if o.Active == s.live[i.Token] {
			return []*state{s}
		}
	}
	return nil
}

// happen is what an operation with an unknown outcome may have done.
func happen(s *state, i Input) []*state {
	switch i.Op {
	case Redeem:
		if !s.redeemed {
			n := s.clone()
			n.redeemed = true // with tokens nobody saw
			return []*state{n}
		}
		return []*state{s.revokeFamily()}
	case Refresh:
		switch {
		case s.live[i.Token] && isRefresh(i.Token):
			return []*state{rotate(s, i.Token, "", "")}
		case s.rotated[i.Token]:
			return []*state{s.revokeFamily()}
		}
	case Revoke:
		return []*state{revoke(s, i.Token)}
	}
	return nil
}

func rotate(s *state, refresh, access2, refresh2 string) *state {
	n := s.clone()
	delete(n.live, refresh)
	delete(n.live, n.partner[refresh])
	n.rotated[refresh] = true
	n.issue(access2, refresh2)
	return n
}

func revoke(s *state, token string) *state {
	if isRefresh(token) {
		return s.revokeFamily()
	}
	if !s.live[token] {
		return s
	}
	n := s.clone()
	delete(n.live, token)
	return n
}

// fresh reports whether an answer's tokens are new to the family.
func fresh(s *state, o Output) bool {
	_, a := s.live[o.Access]
	_, r := s.live[o.Refresh]
	return o.Access != "" && o.Refresh != "" && !a && !r && !s.rotated[o.Refresh]
}

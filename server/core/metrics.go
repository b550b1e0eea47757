package core

// Observer is told of the service's events, for metrics. The core keeps no
// metrics library: package server counts these events in Prometheus series
// (plugintoken_tokens_total and the others, see docs/operations.md), and a
// host that calls the core directly passes an Observer of its own, or none.
// Its methods are called on the request's goroutine: they must be quick
// and safe for concurrent use.
type Observer interface {
	// Observe is called once for each event.
	Observe(e Event)
	// Swept is called after each sweep with what it removed (auth codes,
	// token pairs) and how many records it could not decode and left.
	Swept(codes, pairs, undecodable int)
}

// Event is something the service did that operators count.
type Event int

// The events an Observer is told of.
const (
	// EventIssued: an exchange issued a token pair.
	EventIssued Event = iota + 1
	// EventRefreshed: a rotation issued a token pair.
	EventRefreshed
	// EventRevoked: a revocation revoked a token or a family.
	EventRevoked
	// EventCodeReplay: a redeemed auth code came back; its family was
	// revoked.
	EventCodeReplay
	// EventTokenReuse: a rotated refresh token came back; its family was
	// revoked.
	EventTokenReuse
	// EventRateLimited: an attempt was refused after too many failures.
	EventRateLimited
)

// String names the event as the Prometheus label of package server does.
func (e Event) String() string {
	switch e {
	case EventIssued:
		return "issued"
	case EventRefreshed:
		return "refreshed"
	case EventRevoked:
		return "revoked"
	case EventCodeReplay:
		return "auth_code_replay"
	case EventTokenReuse:
		return "refresh_token_reuse"
	case EventRateLimited:
		return "rate_limited"
	}
	return "unknown"
}

// noObserver is the Observer of a Config that sets none.
type noObserver struct{}

func (noObserver) Observe(Event)       {}
func (noObserver) Swept(int, int, int) {}

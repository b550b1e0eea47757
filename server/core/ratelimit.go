package core

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter sheds noise and abuse (RFC 6749 §2.3.1) without ever
// refusing a correct credential: every credential here has at least 206
// bits, so nobody guesses one online, and a client that presents the right
// one is served however many wrong ones came from its address (a shared
// proxy, a NAT). Only failures are counted: each failed secret, auth code,
// refresh token or admin bearer spends a token of the bucket of its key
// (plugin and client address, or the client address alone for the admin
// bearer), and a failure that finds the bucket empty is answered 429 with
// Retry-After instead of its usual error. Spending is atomic, so a burst of
// simultaneous failures is counted exactly.
//
// Memory is bounded by maxKeys: past it the least recently failing key is
// forgotten, so a flood of new keys evicts only keys quieter than itself.
type failureLimiter struct {
	every   rate.Limit
	burst   int
	maxKeys int

	mu    sync.Mutex
	keys  map[string]*list.Element // of *limiterEntry
	order *list.List               // most recently failed first
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
}

// defaultMaxLimiterKeys bounds the limiter's memory (about 200 bytes a key).
const defaultMaxLimiterKeys = 100_000

// newFailureLimiter allows burst failures per key, refilling one every
// window/burst, and remembers at most maxKeys keys. A burst of zero or less
// turns limiting off.
func newFailureLimiter(burst int, window time.Duration, maxKeys int) *failureLimiter {
	if burst <= 0 || window <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = defaultMaxLimiterKeys
	}
	return &failureLimiter{every: rate.Every(window / time.Duration(burst)), burst: burst, maxKeys: maxKeys,
		keys: map[string]*list.Element{}, order: list.New()}
}

// fail spends one attempt of key at now. It reports whether the budget was
// already spent, and then how long until one attempt is back.
func (l *failureLimiter) fail(key string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	var lim *rate.Limiter
	if e, ok := l.keys[key]; ok {
		l.order.MoveToFront(e)
		lim = e.Value.(*limiterEntry).lim
	} else {
		lim = rate.NewLimiter(l.every, l.burst)
		l.keys[key] = l.order.PushFront(&limiterEntry{key: key, lim: lim})
		for l.order.Len() > l.maxKeys {
			oldest := l.order.Back()
			l.order.Remove(oldest)
			delete(l.keys, oldest.Value.(*limiterEntry).key)
		}
	}
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return 0, false
	}
	tokens := lim.TokensAt(now)
	return time.Duration((1 - tokens) / float64(l.every) * float64(time.Second)), true
}

// size is the number of keys remembered.
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter slows down guessing (RFC 6749 §2.3.1): every failed secret,
// auth code, refresh token or admin bearer spends a token of the bucket of
// its key (plugin and client address, or the client address alone for the
// admin bearer). Once a bucket is empty every attempt under that key, right
// or wrong, is refused with 429 until it refills. Keys that fail nothing
// never get a bucket, so callers of other plugins are unaffected.
type failureLimiter struct {
	every rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// maxLimiterKeys bounds the memory a flood of distinct keys can take: past
// it, buckets that have refilled are dropped, and if none has, the oldest
// state is dropped wholesale (failing open rather than growing without
// bound).
const maxLimiterKeys = 100_000

// newFailureLimiter allows burst failures per key, refilling one every
// window/burst. A burst of zero or less turns limiting off.
func newFailureLimiter(burst int, window time.Duration) *failureLimiter {
	if burst <= 0 || window <= 0 {
		return nil
	}
	return &failureLimiter{every: rate.Every(window / time.Duration(burst)), burst: burst, m: map[string]*rate.Limiter{}}
}

// blocked reports whether key has no attempts left at now, and if so how
// long until it has one.
func (l *failureLimiter) blocked(key string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	lim := l.m[key]
	l.mu.Unlock()
	if lim == nil {
		return 0, false
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - tokens) / float64(l.every) * float64(time.Second))
	return wait, true
}

// fail spends one attempt of key.
func (l *failureLimiter) fail(key string, now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= maxLimiterKeys {
			l.prune(now)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.m[key] = lim
	}
	l.mu.Unlock()
	lim.AllowN(now, 1)
}

// prune drops the buckets that are full again; called with l.mu held.
func (l *failureLimiter) prune(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
		}
	}
	if len(l.m) >= maxLimiterKeys {
		clear(l.m)
	}
}

// retryAfterSeconds rounds a wait up to whole seconds for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache keeps the tokens that lookups found, so that a token presented
// again (the gateway middleware checks the same access token on every call)
// costs a map lookup instead of a read transaction and a decode.
//
// It is safe because this process is the only writer of the file (bbolt's
// lock): every write that changes or deletes a token, or deletes a plugin,
// invalidates what it touched before it returns. A lookup that read the
// file before such a write committed must not put its stale copy back: it
// notes the epoch before reading and fills only if no invalidation happened
// since (invalidations bump the epoch after their commit).
type tokenCache struct {
	epoch atomic.Uint64
	max   int

	mu sync.RWMutex
	m  map[Key]*Token
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[Key]*Token)}
}

// get returns the cached token that ref presents, if any. The secret half
// is compared in constant time, as on a read from the file.
func (c *tokenCache) get(ref Ref) (*Token, bool) {
	c.mu.RLock()
	t := c.m[ref.Key]
	c.mu.RUnlock()
	if t == nil || !ref.matches(t.Secret) {
		return nil, false
	}
	return t, true
}

// fill caches t, read at epoch, unless an invalidation happened since.
// t must not be modified afterwards.
func (c *tokenCache) fill(t *Token, epoch uint64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != epoch {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // map order is random: evict an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[t.Key] = t
}

// invalidate forgets keys; with no keys it forgets everything (a plugin
// deletion or a family revocation, both rare). Call it after the write
// committed.
func (c *tokenCache) invalidate(keys ...Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	if len(keys) == 0 {
		clear(c.m)
		return
	}
	for _, k := range keys {
		delete(c.m, k)
	}
}

// evictExpired drops tokens expired at now, to give their memory back.
func (c *tokenCache) evictExpired(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.m {
		if !now.Before(t.ExpiresAt) {
			delete(c.m, k)
		}
	}
}

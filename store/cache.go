package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache keeps the grants that lookups found, as ready-made views of
// their two tokens, so that a token presented again (the gateway middleware
// checks the same access token on every call) costs a map lookup instead of
// a read transaction and a decode.
//
// It is safe because this process is the only writer of the file (bbolt's
// lock): every write that changes or deletes a grant, or deletes a plugin,
// invalidates what it touched before it returns. A lookup that read the
// file before such a write committed must not put its stale copy back: it
// notes the epoch before reading and fills only if no invalidation happened
// since (invalidations bump the epoch after their commit).
type tokenCache struct {
	epoch atomic.Uint64
	max   int

	mu sync.RWMutex
	m  map[Key]*cachedGrant
}

// cachedGrant is a grant's two tokens, and the secret hashes that present
// them.
type cachedGrant struct {
	accessSecret, refreshSecret Hash
	access, refresh             Token
}

func (c *cachedGrant) token(kind TokenKind) *Token {
	if kind == KindAccess {
		return &c.access
	}
	return &c.refresh
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[Key]*cachedGrant)}
}

// get returns the cached token that ref presents, if any. Both secret
// halves are compared in constant time, as on a read from the file.
func (c *tokenCache) get(ref Ref) (*Token, bool) {
	c.mu.RLock()
	e := c.m[ref.Key]
	c.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	access, refresh := ref.matches(e.accessSecret), ref.matches(e.refreshSecret)
	switch {
	case access:
		return &e.access, true
	case refresh:
		return &e.refresh, true
	}
	return nil, false
}

// fill makes the views of g, read at epoch, and caches them unless an
// invalidation happened since. It returns the views either way.
func (c *tokenCache) fill(g *Grant, epoch uint64) *cachedGrant {
	e := &cachedGrant{accessSecret: g.AccessSecret, refreshSecret: g.RefreshSecret,
		access: g.view(KindAccess), refresh: g.view(KindRefresh)}
	if c.max <= 0 {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != epoch {
		return e
	}
	if len(c.m) >= c.max {
		for k := range c.m { // map order is random: evict an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[g.Key] = e
	return e
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

// evictExpired drops grants whose tokens have both expired at now, to give
// their memory back.
func (c *tokenCache) evictExpired(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if !now.Before(e.access.ExpiresAt) && !now.Before(e.refresh.ExpiresAt) {
			delete(c.m, k)
		}
	}
}

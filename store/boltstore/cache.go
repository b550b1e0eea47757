package boltstore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// tokenCache keeps the grants that lookups found, as ready-made views of
// their two tokens, so that a token presented again (the gateway middleware
// checks the same access token on every call) costs a map lookup instead of
// a read transaction and a decode.
//
// It never serves a state older than the file's (reads stay linearizable
// with writes) because this process is the only writer of the file (bbolt's
// lock) and every write that changes or deletes a grant, or deletes a
// plugin, follows two rules:
//
//   - It drops what it touches inside its write transaction (drop), before
//     the commit makes the new state visible to any reader of the file. From
//     then until the commit, a hit is impossible and a miss reads the old
//     state, which is still the current one.
//   - From its drop until the transaction has ended (settle, after the
//     commit or rollback), no lookup may fill the cache: a lookup that read
//     the file before the commit would put the old state back. A lookup
//     notes the epoch before it reads, and fills only if the epoch is the
//     same and no write is pending when it fills; drop and settle both
//     advance the epoch.
type tokenCache struct {
	max int

	// epoch is advanced under mu by drop and settle; read without mu by a
	// lookup about to read the file.
	epoch atomic.Uint64

	mu sync.RWMutex
	m  map[store.Key]*cachedGrant
	// absent holds keys no grant is stored under, so that presenting an
	// unknown (well-formed) token costs what a known one does, not a read
	// transaction. Such a fact never goes stale: a grant's key is drawn
	// from crypto/rand when the grant is created, so nobody can look it up
	// before it exists (short of guessing 64 random bits), and a deleted
	// key is never used again.
	absent map[store.Key]struct{}
	// pending is true from a drop until the write transaction that dropped
	// has ended.
	pending bool
}

// cachedGrant is a grant's two tokens, and the secret hashes that present
// them.
type cachedGrant struct {
	accessSecret, refreshSecret store.Hash
	access, refresh             store.Token
}

func (c *cachedGrant) token(kind store.TokenKind) *store.Token {
	if kind == store.KindAccess {
		return &c.access
	}
	return &c.refresh
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[store.Key]*cachedGrant), absent: make(map[store.Key]struct{})}
}

// get returns the cached token that ref presents (hit), or reports that the
// cache knows no token is presented (unknown: no grant under the key, or a
// cached grant whose secrets do not match: a grant's secrets never change),
// or neither (ask the file). Both secret halves are compared in constant
// time, as on a read from the file.
func (c *tokenCache) get(ref store.Ref) (e *cachedGrant, kind store.TokenKind, hit, unknown bool) {
	c.mu.RLock()
	e = c.m[ref.Key]
	_, absent := c.absent[ref.Key]
	c.mu.RUnlock()
	if e == nil {
		return nil, "", false, absent
	}
	kind, ok := decide.Kind(ref, decide.Matches(ref, e.accessSecret), decide.Matches(ref, e.refreshSecret))
	if !ok {
		return nil, "", false, true
	}
	return e, kind, true, false
}

// noteAbsent records that no grant is stored under key.
func (c *tokenCache) noteAbsent(key store.Key) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.absent) >= c.max {
		for k := range c.absent { // map order is random: evict an arbitrary entry
			delete(c.absent, k)
			break
		}
	}
	c.absent[key] = struct{}{}
}

// fill makes the views of g, read at epoch, and caches them unless a write
// dropped entries since, or is pending. It returns the views either way.
func (c *tokenCache) fill(g *store.Grant, epoch uint64) *cachedGrant {
	e := &cachedGrant{accessSecret: g.AccessSecret, refreshSecret: g.RefreshSecret,
		access: decide.View(g, store.KindAccess), refresh: decide.View(g, store.KindRefresh)}
	if c.max <= 0 {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending || c.epoch.Load() != epoch {
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

// drop forgets keys; with no keys it forgets everything (a plugin deletion
// or a family revocation, both rare). Call it inside the write transaction
// that changes them, before it commits; settle must follow the
// transaction's end.
func (c *tokenCache) drop(keys ...store.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = true
	c.epoch.Add(1)
	if len(keys) == 0 {
		clear(c.m)
		return
	}
	for _, k := range keys {
		delete(c.m, k)
	}
}

// settle ends the pending state a drop began; the write transaction has
// committed (its state is what the file shows) or rolled back.
func (c *tokenCache) settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending {
		c.pending = false
		c.epoch.Add(1)
	}
}

// evictExpired drops grants whose tokens have both expired at now, to give
// their memory back. Expired tokens are inactive whether cached or not, so
// this needs no write discipline.
func (c *tokenCache) evictExpired(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if !now.Before(e.access.ExpiresAt) && !now.Before(e.refresh.ExpiresAt) {
			delete(c.m, k)
		}
	}
}

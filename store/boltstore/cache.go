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

	mu     sync.RWMutex
	grants generations[*cachedGrant]
	// absent holds keys no grant is stored under, so that presenting an
	// unknown (well-formed) token costs what a known one does, not a read
	// transaction. Such a fact never goes stale: a grant's key is drawn
	// from crypto/rand when the grant is created, so nobody can look it up
	// before it exists (short of guessing 64 random bits), and a deleted
	// key is never used again.
	absent generations[struct{}]
	// pending is true from a drop until the write transaction that dropped
	// has ended.
	pending bool
}

// generations is a map of at most max entries that makes room without
// deleting: new entries go into young; when young holds half of max, it
// becomes old and what old held is forgotten at once (young starts as a new
// map). A Go map that is made room in by deleting one entry for each new
// one grows for ever: its deleted entries' slots are reclaimed only when it
// grows, and it then grows (TestCacheMemoryStaysFlat). The price is the
// policy: an entry is forgotten max/2 to max additions after it was last
// added, however often it was read; a token forgotten while in use is read
// from the file once and added again.
type generations[V any] struct {
	half       int
	young, old map[store.Key]V
}

func newGenerations[V any](bound int) generations[V] {
	return generations[V]{half: bound / 2, young: make(map[store.Key]V)}
}

func (g *generations[V]) get(k store.Key) (V, bool) {
	if v, ok := g.young[k]; ok {
		return v, true
	}
	v, ok := g.old[k]
	return v, ok
}

func (g *generations[V]) put(k store.Key, v V) {
	if _, ok := g.young[k]; !ok && len(g.young) >= max(1, g.half) {
		g.old, g.young = g.young, make(map[store.Key]V, len(g.young))
		if g.half == 0 { // a bound of one: no room for an old generation
			g.old = nil
		}
	}
	g.young[k] = v
}

func (g *generations[V]) delete(k store.Key) {
	delete(g.young, k)
	delete(g.old, k)
}

func (g *generations[V]) clear() {
	g.young, g.old = make(map[store.Key]V), nil
}

func (g *generations[V]) len() int { return len(g.young) + len(g.old) }

// deleteFunc deletes the entries for which del is true.
func (g *generations[V]) deleteFunc(del func(V) bool) {
	for _, m := range []map[store.Key]V{g.young, g.old} {
		for k, v := range m {
			if del(v) {
				delete(m, k)
			}
		}
	}
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
	return &tokenCache{max: max, grants: newGenerations[*cachedGrant](max), absent: newGenerations[struct{}](max)}
}

// get returns the cached token that ref presents (hit), or reports that the
// cache knows no token is presented (unknown: no grant under the key, or a
// cached grant whose secrets do not match: a grant's secrets never change),
// or neither (ask the file). Both secret halves are compared in constant
// time, as on a read from the file.
func (c *tokenCache) get(ref store.Ref) (e *cachedGrant, kind store.TokenKind, hit, unknown bool) {
	c.mu.RLock()
	e, _ = c.grants.get(ref.Key)
	if e == nil {
		_, absent := c.absent.get(ref.Key)
		c.mu.RUnlock()
		return nil, "", false, absent
	}
	c.mu.RUnlock()
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
	c.absent.put(key, struct{}{})
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
	c.grants.put(g.Key, e)
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
		c.grants.clear()
		return
	}
	for _, k := range keys {
		c.grants.delete(k)
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
	c.grants.deleteFunc(func(e *cachedGrant) bool {
		return !now.Before(e.access.ExpiresAt) && !now.Before(e.refresh.ExpiresAt)
	})
}

// len is how many grants and absent keys the cache holds.
func (c *tokenCache) len() (grants, absent int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.grants.len(), c.absent.len()
}

package boltstore

import (
	"context"
	"sync"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// CreatePlugin stores a new plugin. It returns ErrExists when the id is taken.
func (db *DB) CreatePlugin(ctx context.Context, p store.Plugin) error {
	return db.update(ctx, func(tx txn) error {
		if tx.Bucket(bucketPlugins).Get([]byte(p.ID)) != nil {
			return store.ErrExists
		}
		return put(tx, bucketPlugins, []byte(p.ID), &p)
	})
}

// Plugin returns the plugin with the given id, or ErrNotFound.
func (db *DB) Plugin(ctx context.Context, id string) (store.Plugin, error) {
	var p store.Plugin
	err := db.view(ctx, func(tx txn) error {
		var err error
		p, err = plugin(tx, id)
		return err
	})
	return p, err
}

// pluginCache keeps decoded plugins for write transactions: every exchange,
// refresh and revocation reads its plugin (40-odd scopes) inside the group
// commit, where a decode costs all callers. Only write transactions use it,
// and they run one at a time with the plugin writes, which forget the
// plugin inside their own transaction: so a write transaction never sees an
// entry older than the data it could read itself.
type pluginCache struct {
	mu sync.Mutex
	m  map[string]*store.Plugin
}

// inWrite returns the plugin id inside the write transaction tx, from the
// cache when it can, or ErrNotFound. The plugin's Scopes are shared: read
// only.
func (c *pluginCache) inWrite(tx txn, id string) (store.Plugin, error) {
	c.mu.Lock()
	p, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return *p, nil
	}
	fresh, err := plugin(tx, id)
	if err != nil {
		return fresh, err
	}
	c.mu.Lock()
	if len(c.m) >= 4096 {
		clear(c.m)
	}
	c.m[id] = &fresh
	c.mu.Unlock()
	return fresh, nil
}

// peek is inWrite for read transactions, which may run beside a plugin
// write: it reads a cached plugin but never fills the cache. What it returns
// is at most as old as a read transaction begun a moment earlier would see;
// callers use it only for verdicts that a write transaction decides again.
func (c *pluginCache) peek(tx txn, id string) (store.Plugin, error) {
	c.mu.Lock()
	p, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return *p, nil
	}
	return plugin(tx, id)
}

// forget drops a plugin; plugin writes call it inside their transaction.
func (c *pluginCache) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// plugin reads a plugin inside tx, or returns ErrNotFound.
func plugin(tx txn, id string) (store.Plugin, error) {
	var p store.Plugin
	ok, err := get(tx, bucketPlugins, []byte(id), &p)
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	return p, err
}

// DeletePlugin removes the plugin, or returns ErrNotFound. From the moment it
// returns, the plugin's codes and tokens are treated as unknown.
func (db *DB) DeletePlugin(ctx context.Context, id string) error {
	return db.update(ctx, func(tx txn) error {
		b := tx.Bucket(bucketPlugins)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		db.plugins.forget(id)
		db.cache.drop()                      // cached tokens do not know their plugin is gone
		if err := owePurge(tx); err != nil { // the next sweep deletes its codes and tokens
			return err
		}
		return b.Delete([]byte(id))
	})
}

// SetPluginSecret replaces the plugin's secret hash and hint, or returns
// ErrNotFound. The old secret stops matching when it returns.
func (db *DB) SetPluginSecret(ctx context.Context, id string, secret store.Hash, hint string, now time.Time) error {
	return db.update(ctx, func(tx txn) error {
		p, err := plugin(tx, id)
		if err != nil {
			return err
		}
		db.plugins.forget(id)
		p.SecretHash, p.SecretHint, p.UpdatedAt = secret, hint, now
		return put(tx, bucketPlugins, []byte(id), &p)
	})
}

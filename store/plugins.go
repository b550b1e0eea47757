package store

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CreatePlugin stores a new plugin. It returns ErrExists when the id is taken.
func (db *DB) CreatePlugin(ctx context.Context, p Plugin) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketPlugins).Get([]byte(p.ID)) != nil {
			return ErrExists
		}
		return put(tx, bucketPlugins, []byte(p.ID), &p)
	})
}

// Plugin returns the plugin with the given id, or ErrNotFound.
func (db *DB) Plugin(ctx context.Context, id string) (Plugin, error) {
	var p Plugin
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		p, err = plugin(tx, id)
		return err
	})
	return p, err
}

// plugin reads a plugin inside tx, or returns ErrNotFound.
func plugin(tx *bolt.Tx, id string) (Plugin, error) {
	var p Plugin
	ok, err := get(tx, bucketPlugins, []byte(id), &p)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return p, err
}

// DeletePlugin removes the plugin, or returns ErrNotFound. From the moment it
// returns, the plugin's codes and tokens are treated as unknown.
func (db *DB) DeletePlugin(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlugins)
		if b.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err == nil {
		db.cache.invalidate() // cached tokens do not know their plugin is gone
	}
	return err
}

// SetPluginSecret replaces the plugin's secret hash and hint, or returns
// ErrNotFound. The old secret stops matching when it returns.
func (db *DB) SetPluginSecret(ctx context.Context, id string, secret Hash, hint string, now time.Time) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		p, err := plugin(tx, id)
		if err != nil {
			return err
		}
		p.SecretHash, p.SecretHint, p.UpdatedAt = secret, hint, now
		return put(tx, bucketPlugins, []byte(id), &p)
	})
}

package etcdstore

// Plugins.

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
)

// CreatePlugin stores a new plugin, or returns store.ErrExists.
func (db *DB) CreatePlugin(ctx context.Context, p store.Plugin) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	k := db.pluginKey(p.ID)
	resp, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, marshal(&p))).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return store.ErrExists
	}
	return nil
}

// Plugin returns a plugin, or store.ErrNotFound.
func (db *DB) Plugin(ctx context.Context, id string) (store.Plugin, error) {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	_, p, err := db.readWithPlugin(ctx, db.pluginKey(id))
	if err != nil {
		return store.Plugin{}, err
	}
	if p == nil {
		return store.Plugin{}, store.ErrNotFound
	}
	return *p, nil
}

// DeletePlugin removes a plugin, or returns store.ErrNotFound. Its codes and
// token pairs are unknown to every read from then on; the next Sweep
// deletes them (meta/purge asks it to).
func (db *DB) DeletePlugin(ctx context.Context, id string) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	k := db.pluginKey(id)
	resp, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).
		Then(clientv3.OpDelete(k), clientv3.OpPut(db.purgeKey(), id)).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return store.ErrNotFound
	}
	return nil
}

// SetPluginSecret replaces a plugin's secret hash, or returns
// store.ErrNotFound.
func (db *DB) SetPluginSecret(ctx context.Context, id string, secret store.Hash, hint string, now time.Time) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(id)}
	return db.retry(ctx, func() (bool, error) {
		reads, err := db.readAll(ctx, keys...)
		if err != nil {
			return false, err
		}
		p, err := decodePlugin(reads[0])
		if err != nil || p == nil {
			return false, errors.Join(err, notFoundIfNil(p))
		}
		p.SecretHash, p.SecretHint, p.UpdatedAt = secret, hint, now
		return db.commit(ctx, unchanged(keys, reads), clientv3.OpPut(keys[0], marshal(p)))
	})
}

func notFoundIfNil(p *store.Plugin) error {
	if p == nil {
		return store.ErrNotFound
	}
	return nil
}

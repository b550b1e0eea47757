package etcdstore

// Token pairs: lookups, rotation and revocation.

import (
	"context"
	"errors"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// grantAndPlugin reads a grant and whether the plugin it names exists, as
// one snapshot: the plugin is read at the revision the grant was read at,
// so the pair is the state of one instant (a plugin deleted, or deleted and
// created again, in between cannot mix two states). A grant whose plugin is
// gone reads as absent.
//
// A grant's plugin never changes, so once a grant has been read its
// plugin's id is remembered (owners) and the next read of it is one etcd
// transaction of both reads, instead of a read of the grant then one of the
// plugin. Nothing read is cached: both records are read every time.
func (db *DB) grantAndPlugin(ctx context.Context, key store.Key) (*store.Grant, read, error) {
	if pluginID, ok := db.owners.get(key); ok {
		resps, err := db.reads.do(ctx,
			clientv3.OpGet(db.grantKey(key)),
			clientv3.OpGet(db.pluginKey(pluginID), clientv3.WithCountOnly()),
		)
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		var r read
		if kvs := resps[0].GetResponseRange().Kvs; len(kvs) > 0 {
			r = read{raw: kvs[0].Value, rev: kvs[0].ModRevision}
		}
		g, err := decodeGrant(r, key)
		switch {
		case err != nil:
			return nil, r, err
		case g == nil:
			db.owners.forget(key)
			return nil, r, nil
		case g.PluginID == pluginID:
			if resps[1].GetResponseRange().Count == 0 {
				return nil, r, nil
			}
			return g, r, nil
		}
		// Another plugin's grant under the key (keys are never reused, so
		// this does not happen): read it the long way.
		db.owners.forget(key)
	}
	// The plugin is read at the revision the grant was read at. Run's
	// compaction (this replica's or another's) keeps an interval of
	// history, far more than the moment between the two reads; should a
	// compaction still pass that revision (a stalled process), both are
	// read again.
	var resp *clientv3.GetResponse
	var exists *clientv3.GetResponse
	var r read
	var g *store.Grant
	for attempt := 0; ; attempt++ {
		var err error
		resp, err = db.c.Get(ctx, db.grantKey(key))
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		r = read{}
		if len(resp.Kvs) > 0 {
			r = read{raw: resp.Kvs[0].Value, rev: resp.Kvs[0].ModRevision}
		}
		g, err = decodeGrant(r, key)
		if err != nil || g == nil {
			return nil, r, err
		}
		exists, err = db.c.Get(ctx, db.pluginKey(g.PluginID), clientv3.WithCountOnly(), clientv3.WithRev(resp.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		break
	}
	db.owners.put(key, g.PluginID)
	if exists.Count == 0 {
		return nil, r, nil
	}
	return g, r, nil
}

// owners remembers which plugin a grant belongs to (a fact that never
// changes), for at most max grants: past that, it starts over.
type owners struct {
	mu  sync.Mutex
	m   map[store.Key]string
	max int
}

// defaultOwners bounds owners: about 80 bytes a grant.
const defaultOwners = 65536

func (o *owners) get(k store.Key) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id, ok := o.m[k]
	return id, ok
}

func (o *owners) put(k store.Key, pluginID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= o.max {
		o.m = make(map[store.Key]string)
	}
	o.m[k] = pluginID
}

func (o *owners) forget(k store.Key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, k)
}

// Token returns the token a Ref presents, or store.ErrNotFound. The result
// is the caller's own (nothing is cached).
func (db *DB) Token(ctx context.Context, ref store.Ref) (*store.Token, error) {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	g, _, err := db.grantAndPlugin(ctx, ref.Key)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, store.ErrNotFound
	}
	kind, ok := decide.Presents(g, ref)
	if !ok {
		return nil, store.ErrNotFound
	}
	t := decide.View(g, kind)
	return &t, nil
}

// RotateRefreshToken keeps the contract of store.Store's RotateRefreshToken,
// with the check, the rotation (or the family's revocation on reuse) in one
// etcd transaction guarded by the revisions read.
func (db *DB) RotateRefreshToken(ctx context.Context, r store.Rotation) (store.Grant, error) {
	if err := r.Check(); err != nil {
		return store.Grant{}, err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(r.PluginID), db.grantKey(r.Refresh.Key)}
	var outcome error
	var fresh store.Grant
	err := db.retry(ctx, func() (bool, error) {
		reads, p, err := db.readWithPlugin(ctx, keys...)
		if err != nil {
			return false, err
		}
		old, err := decodeGrant(reads[1], r.Refresh.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Rotation(r, p, old)
		outcome, fresh = plan.Outcome, plan.Result
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return store.Grant{}, err
	}
	if outcome != nil {
		return store.Grant{}, outcome
	}
	return fresh, nil
}

// RevokeToken keeps the contract of store.Store's RevokeToken: an access
// token is revoked alone; a refresh token, live or rotated, revokes its
// whole family in one transaction guarded by the revisions read.
func (db *DB) RevokeToken(ctx context.Context, r store.Revocation) error {
	if err := r.Check(); err != nil {
		return err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	var outcome error
	err := db.retry(ctx, func() (bool, error) {
		var p *store.Plugin
		var pread read
		if r.PluginID != "" {
			reads, plugin, err := db.readWithPlugin(ctx, db.pluginKey(r.PluginID))
			if err != nil {
				return false, err
			}
			p, pread = plugin, reads[0]
		}
		g, gread, err := db.grantAndPlugin(ctx, r.Token.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Revocation(r, p, g)
		outcome = plan.Outcome
		keys, reads := []string{db.grantKey(r.Token.Key)}, []read{gread}
		if r.PluginID != "" {
			keys, reads = append(keys, db.pluginKey(r.PluginID)), append(reads, pread)
		}
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return err
	}
	return outcome
}

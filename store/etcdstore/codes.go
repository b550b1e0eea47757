package etcdstore

// Auth codes: creation and redemption.

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// CreateAuthCode stores a new code for an existing plugin. It returns
// store.ErrNotFound when the plugin does not exist, store.ErrExists when the
// key is taken.
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	pk, ck := db.pluginKey(c.PluginID), db.codeKey(c.Key)
	resp, err := db.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(pk), ">", 0), clientv3.Compare(clientv3.CreateRevision(ck), "=", 0)).
		Then(clientv3.OpPut(ck, marshal(&c)), db.indexOp(&c, nil)).
		Else(clientv3.OpGet(pk, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return store.ErrNotFound
		}
		return store.ErrExists
	}
	return nil
}

// RedeemAuthCode keeps the contract of store.Store's RedeemAuthCode: the code
// is checked and consumed, and the grant stored, in one etcd transaction
// guarded by the revisions of the plugin and the code, so of any number of
// concurrent redemptions through any number of replicas exactly one
// succeeds. A replay revokes the code's family in one transaction too.
func (db *DB) RedeemAuthCode(ctx context.Context, r store.Redemption) error {
	if err := r.Check(); err != nil {
		return err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(r.PluginID), db.codeKey(r.Code.Key)}
	var outcome error
	err := db.retry(ctx, func() (bool, error) {
		reads, p, err := db.readWithPlugin(ctx, keys...)
		if err != nil {
			return false, err
		}
		c, err := decodeCode(reads[1], r.Code.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Redemption(r, p, c)
		outcome = plan.Outcome
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return err
	}
	return outcome
}

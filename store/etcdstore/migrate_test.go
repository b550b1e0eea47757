package etcdstore_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/etcdstore"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	"github.com/plugintoken/plugintoken/store/storetest"
)

// TestOldPrefixesMigrate: a prefix an earlier release wrote (schema 3:
// format 1 records, no expiry index; schema 4: format 1 records with their
// entries; schema 5: format 2, a redeemed code kept as its tombstone) opens, is recorded as the current version, serves its tokens,
// and its records are swept when they expire: the migration from 3 wrote
// their entries.
func TestOldPrefixesMigrate(t *testing.T) {
	c := hostClient(t, etcdtest.Start(t).Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now().UTC()
	for _, version := range []string{codec.UnindexedSchemaVersion, "4", "5"} {
		t.Run("schema"+version, func(t *testing.T) {
			prefix := "/old-" + version + "/"
			code := store.AuthCode{Key: storetest.Ref("code").Key, Secret: storetest.Ref("code").Secret, PluginID: "plu1", BaseID: "bse1",
				IssuedAt: t0, ExpiresAt: t0.Add(time.Minute), RedeemedAt: t0}
			g := store.Grant{Key: store.NewGrantKey(code.Key), AccessSecret: store.HashOf("a"), RefreshSecret: store.HashOf("r"),
				PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read"},
				IssuedAt: t0, AccessExpiresAt: t0.Add(time.Hour), RefreshExpiresAt: t0.Add(2 * time.Hour)}
			// Schemas 3 and 4 wrote format 1, schema 5 format 2 (a grant
			// without its code's hash, the code kept as its tombstone).
			rawCode, rawGrant := codec.EncodeAuthCodeV1(&code), codec.EncodeGrantV1(&g)
			if version == "5" {
				rawCode, rawGrant = codec.EncodeAuthCode(&code), codec.EncodeGrant(&g)
			}
			puts := []clientv3.Op{
				clientv3.OpPut(prefix+"meta/schema", version),
				clientv3.OpPut(prefix+"plugins/plu1", string(codec.EncodePlugin(&store.Plugin{ID: "plu1", Name: "Chart", CreatedAt: t0, UpdatedAt: t0}))),
				clientv3.OpPut(prefix+"codes/"+hex.EncodeToString(code.Key[:]), string(rawCode)),
				clientv3.OpPut(prefix+"grants/"+hex.EncodeToString(g.Key[:]), string(rawGrant)),
			}
			if version != codec.UnindexedSchemaVersion {
				for _, e := range [][]byte{codec.ExpiryKey(g.RefreshExpiresAt, codec.ExpiryCode, code.Key), codec.ExpiryKey(g.RefreshExpiresAt, codec.ExpiryGrant, g.Key)} {
					puts = append(puts, clientv3.OpPut(prefix+"expiry/"+hex.EncodeToString(e), ""))
				}
			}
			if _, err := c.Txn(ctx).Then(puts...).Commit(); err != nil {
				t.Fatal(err)
			}
			db, err := etcdstore.New(c, etcdstore.Options{Prefix: prefix, RequestTimeout: 30 * time.Second})
			if err != nil {
				t.Fatalf("open a schema %s prefix: %v", version, err)
			}
			defer db.Close()
			resp, err := c.Get(ctx, prefix+"meta/schema")
			if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != codec.SchemaVersion {
				t.Fatalf("schema after opening: %v %v, want %s", resp, err, codec.SchemaVersion)
			}
			if tok, err := db.Token(ctx, store.Ref{Key: g.Key, Secret: g.AccessSecret}); err != nil || tok.Kind != store.KindAccess {
				t.Errorf("the format 1 grant's access token: %+v, %v", tok, err)
			}
			if res, err := db.Sweep(ctx, t0.Add(time.Minute)); err != nil || res.Codes+res.Grants != 0 {
				t.Errorf("sweep before anything expired: %+v %v", res, err)
			}
			if res, err := db.Sweep(ctx, t0.Add(3*time.Hour)); err != nil || res.Codes != 1 || res.Grants != 1 {
				t.Errorf("sweep after the grant expired: %+v %v, want the code and the grant", res, err)
			}
		})
	}
}

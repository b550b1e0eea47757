package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// TestOldFilesMigrate opens files earlier releases wrote (schema 3, no
// expiry index: testdata/schema3; schema 4, records of format 1:
// testdata/schema4; schema 5, redeemed codes kept as tombstones:
// testdata/schema5): each is migrated in place, and every credential in it
// works as it did, a replay of its redeemed code included; a code it holds
// unredeemed is consumed by its exchange, as this version does, and its
// replay is still recognised; its long-expired records are swept.
func TestOldFilesMigrate(t *testing.T) {
	for _, version := range []string{"schema3", "schema4", "schema5"} {
		t.Run(version, func(t *testing.T) { testOldFileMigrates(t, version) })
	}
}

func testOldFileMigrates(t *testing.T, version string) {
	raw, err := os.ReadFile("testdata/" + version + "/" + version + ".db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var creds map[string]string
	b, _ := os.ReadFile("testdata/" + version + "/" + version + ".json")
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatalf("open a %s file: %v", version, err)
	}
	svc, err := core.New(core.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := st.Sweep(ctx, time.Now())
	if err != nil || res.Codes != 3 || res.Grants != 3 {
		t.Errorf("sweep after the migration: %+v, %v; want the 3 expired codes and 3 grants", res, err)
	}
	for _, name := range []string{"liveAccess", "redeemedCodeAccess"} {
		if _, err := svc.Authenticate(ctx, creds[name]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := svc.Authenticate(ctx, creds["revokedAccess"]); err == nil {
		t.Error("the revoked access token works after the migration")
	}
	if _, err := svc.Refresh(ctx, creds["pluginId"], creds["liveRefresh"], creds["secret"]); err != nil {
		t.Errorf("live refresh token: %v", err)
	}
	req := core.TokenRequest{BaseID: "bseA", Secret: creds["secret"], Scopes: []string{"table|read"}}
	req.AuthCode = creds["unredeemedCode"]
	fresh, err := svc.Exchange(ctx, creds["pluginId"], req)
	if err != nil {
		t.Errorf("unredeemed code: %v", err)
	}
	var ce *core.Error
	if _, err := svc.Exchange(ctx, creds["pluginId"], req); !errors.As(err, &ce) || ce.Reason != "auth_code_replay" {
		t.Errorf("replay of the code exchanged after the migration: %v, want auth_code_replay", err)
	}
	if _, err := svc.Authenticate(ctx, fresh.AccessToken); err == nil {
		t.Error("the replay did not revoke the token of the code exchanged after the migration")
	}
	req.AuthCode = creds["redeemedCode"]
	if _, err := svc.Exchange(ctx, creds["pluginId"], req); !errors.As(err, &ce) || ce.Reason != "auth_code_replay" {
		t.Errorf("replay of the redeemed code: %v, want auth_code_replay", err)
	}
	if _, err := svc.Authenticate(ctx, creds["redeemedCodeAccess"]); err == nil {
		t.Error("the replay did not revoke the code's token")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); v != "6" {
			t.Errorf("schema after the migration: %q", v)
		}
		return nil
	})
}

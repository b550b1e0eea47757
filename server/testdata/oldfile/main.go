//go:build ignore

// Command oldfile writes the bbolt file that TestOldFilesMigrate opens for
// one schema version, through core.Service, with the credentials it needs
// beside it. Run it in a checkout of the commit whose schema the test is
// to cover, then commit what it wrote under server/testdata/schemaN:
//
//	git worktree add /tmp/old <commit>
//	cp server/testdata/oldfile/main.go /tmp/old/oldfile.go
//	(cd /tmp/old && go run ./oldfile.go -out "$PWD/server/testdata/schemaN" -name schemaN)
//
// The recipe is the same for every version: a plugin; a code exchanged
// and its refresh token rotated; a redeemed code; a pair whose access
// token was revoked; an unredeemed code (all with 50-year lifetimes); and
// three exchanges made with a clock in 2021 and lifetimes of a minute and
// an hour, long expired.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

func main() {
	out := flag.String("out", "", "folder to write <name>.db and <name>.json into")
	name := flag.String("name", "", "schemaN")
	flag.Parse()
	if *out == "" || *name == "" {
		log.Fatal("oldfile: -out and -name are required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(*out, *name+".db")
	_ = os.Remove(path)
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	creds := map[string]string{}
	long := 50 * 365 * 24 * time.Hour
	scopes := []string{"table|read"}

	// Three exchanges with a clock in 2021: long expired.
	clock := time.Date(2021, 3, 1, 12, 0, 0, 0, time.UTC)
	old, err := core.New(core.Config{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return clock },
		AuthCodeTTL: time.Minute, AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour})
	must(err)
	p, err := old.CreatePlugin(ctx, "migration", scopes)
	must(err)
	creds["pluginId"], creds["secret"] = p.ID, p.Secret
	for range 3 {
		c, err := old.IssueAuthCode(ctx, p.ID, "bseA", "")
		must(err)
		_, err = old.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: c.Code, Scopes: scopes})
		must(err)
	}

	svc, err := core.New(core.Config{Store: st, Logger: slog.New(slog.DiscardHandler), AuthCodeTTL: long, AccessTokenTTL: long, RefreshTokenTTL: long})
	must(err)
	exchange := func() core.TokenPair {
		c, err := svc.IssueAuthCode(ctx, p.ID, "bseA", "")
		must(err)
		pair, err := svc.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: c.Code, Scopes: scopes})
		must(err)
		return pair
	}
	rotated := exchange()
	live, err := svc.Refresh(ctx, p.ID, rotated.RefreshToken, p.Secret)
	must(err)
	creds["rotatedRefresh"], creds["liveAccess"], creds["liveRefresh"] = rotated.RefreshToken, live.AccessToken, live.RefreshToken

	c, err := svc.IssueAuthCode(ctx, p.ID, "bseA", "")
	must(err)
	redeemed, err := svc.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: c.Code, Scopes: scopes})
	must(err)
	creds["redeemedCode"], creds["redeemedCodeAccess"] = c.Code, redeemed.AccessToken

	revoked := exchange()
	must(svc.RevokeToken(ctx, revoked.AccessToken))
	creds["revokedAccess"], creds["refreshOfRevokedAccess"] = revoked.AccessToken, revoked.RefreshToken

	unredeemed, err := svc.IssueAuthCode(ctx, p.ID, "bseA", "")
	must(err)
	creds["unredeemedCode"] = unredeemed.Code

	must(st.Close())
	b, err := json.MarshalIndent(creds, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(*out, *name+".json"), append(b, '\n'), 0o644))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store"
)

const backupUsage = `Usage: plugintoken backup [--server URL] --out FILE

Fetches a hot backup of a running server's database (GET /api/admin/backup)
into FILE, checks that it opens as a consistent database, and only then puts
it in place. The admin token comes from PLUGINTOKEN_ADMIN_TOKEN (the first of
the list) or from the admin token file.

Example:
  PLUGINTOKEN_ADMIN_TOKEN=... plugintoken backup --out /backups/plugintoken.db

Flags:
`

// runBackup is `plugintoken backup`.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plugintoken backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverURL := fs.String("server", envOr(getenv, "PLUGINTOKEN_SERVER", "http://127.0.0.1:8080"), "server URL (env PLUGINTOKEN_SERVER)")
	out := fs.String("out", "", "file to write the backup to (required)")
	tokenFile := fs.String("admin-token-file", envOr(getenv, "PLUGINTOKEN_ADMIN_TOKEN_FILE", defaultAdminTokenFile(DefaultConfig().DBPath)),
		"admin token file, used when PLUGINTOKEN_ADMIN_TOKEN is not set")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	fs.Usage = func() { fmt.Fprint(fs.Output(), backupUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--out is required")
	}
	// Renaming the backup over a file a running server holds (its live
	// database, say) would replace that server's data under it and let
	// another server open the file beside it.
	if busy, err := inUse(*out); err != nil {
		return fmt.Errorf("check %s: %w", *out, err)
	} else if busy {
		return fmt.Errorf("%s is in use by a running process (a live database?): choose another --out", *out)
	}
	token, err := adminToken(getenv, *tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	c, err := gen.NewClient(strings.TrimRight(*serverURL, "/")+"/api", gen.WithRequestEditorFn(
		func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		return err
	}
	res, err := c.GetBackup(ctx)
	if err != nil {
		return fmt.Errorf("fetch backup: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("fetch backup: %s: %s", res.Status, strings.TrimSpace(string(body)))
	}

	// Written beside the target, synced, checked, then renamed: FILE is
	// either the previous backup or a complete, consistent new one.
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, res.Body)
	if err == nil && res.ContentLength >= 0 && n != res.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, res.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if err := verifyBackup(ctx, tmp.Name()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", *out, n)
	return nil
}

// verifyBackup opens a downloaded backup and checks its consistency.
func verifyBackup(ctx context.Context, path string) error {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return fmt.Errorf("the backup does not open: %w", err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		return fmt.Errorf("the backup is inconsistent: %w", err)
	}
	return nil
}

// adminToken is the first token of PLUGINTOKEN_ADMIN_TOKEN, else of the
// token file.
func adminToken(getenv func(string) string, file string) (string, error) {
	if toks := splitTokens(getenv("PLUGINTOKEN_ADMIN_TOKEN")); len(toks) > 0 {
		return toks[0], nil
	}
	toks, err := readTokenFile(file)
	if err != nil {
		return "", fmt.Errorf("no admin token: set PLUGINTOKEN_ADMIN_TOKEN or --admin-token-file (%w)", err)
	}
	return toks[0], nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

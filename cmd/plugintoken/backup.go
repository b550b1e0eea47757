package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plugintoken/plugintoken/store/boltstore"
)

const backupSummary = `fetch a hot backup of a running server's database (GET /api/admin/backup)
into FILE, check that it opens as a consistent database, and only then put
it in place. --out may name a folder: the file is then named after the
time. The admin token comes from PLUGINTOKEN_ADMIN_TOKEN (the first of the
list) or from the admin token file`

var backupExamples = []string{
	"plugintoken backup --out backups/",
	"plugintoken backup --server 10.0.0.5:8080 --out /var/backups/plugintoken.db --json",
}

// runBackup is `plugintoken backup`; it returns the exit code.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	const name = "plugintoken backup"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	common := addCommonFlags(fs, getenv)
	out := fs.String("out", "", "file (or folder) to write the backup to (required)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText(name, "", backupSummary, backupExamples, fs))
		return 0
	}
	if err == nil && fs.NArg() > 0 {
		err = usageError("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && *out == "" {
		err = usageError("--out is required")
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	path, n, err := backup(ctx, common, getenv, *out)
	if err != nil {
		return fail(stderr, name, err)
	}
	if *common.asJSON {
		fmt.Fprintf(stdout, "{\"file\":%q,\"bytes\":%d}\n", path, n)
	} else {
		fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", path, n)
	}
	return 0
}

// backup fetches a backup into out (a file, or a folder to name one in),
// and returns the file written and its size.
func backup(ctx context.Context, common commonFlags, getenv func(string) string, out string) (string, int64, error) {
	if st, err := os.Stat(out); (err == nil && st.IsDir()) || strings.HasSuffix(out, string(os.PathSeparator)) {
		if err := os.MkdirAll(out, 0o700); err != nil {
			return "", 0, err
		}
		out = filepath.Join(out, "plugintoken-"+time.Now().UTC().Format("20060102T150405Z")+".db")
	}
	// Renaming the backup over a file a running server holds (its live
	// database, say) would replace that server's data under it and let
	// another server open the file beside it.
	if busy, err := inUse(out); err != nil {
		return "", 0, fmt.Errorf("check %s: %w", out, err)
	} else if busy {
		return "", 0, fmt.Errorf("%s is in use by a running process (a live database?): choose another --out", out)
	}
	c, server, err := common.client(getenv)
	if err != nil {
		return "", 0, err
	}
	res, err := c.GetBackup(ctx)
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return "", 0, reachError(server, uerr.Err)
	}
	if err != nil {
		return "", 0, fmt.Errorf("fetch backup: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return "", 0, fmt.Errorf("fetch backup: %w", apiError(res, body))
	}

	// Written beside the target, synced, checked, then renamed: FILE is
	// either the previous backup or a complete, consistent new one.
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".partial-*")
	if err != nil {
		return "", 0, err
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
		return "", 0, fmt.Errorf("write backup: %w", err)
	}
	if err := verifyBackup(ctx, tmp.Name()); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", 0, err
	}
	return out, n, nil
}

// verifyBackup opens a backup and checks its consistency.
func verifyBackup(ctx context.Context, path string) error {
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		return fmt.Errorf("the backup does not open: %w", err)
	}
	defer func() { _ = db.Close() }() // only read
	if err := db.Check(ctx); err != nil {
		return fmt.Errorf("the backup is inconsistent: %w", err)
	}
	return nil
}

const restoreSummary = `put a backup in place of a stopped server's database: check that
the backup opens and is consistent, copy it beside the database, and rename
it over the database, keeping the replaced file as DB.replaced-<time>.
The server must be stopped (a running server's file is refused). The admin
token file beside the database is kept, so the same admin token works after
the restore. Everything done after the backup was taken is undone: tokens
issued since are unknown, and tokens revoked since are active again until
they expire; revoke them again if that matters`

var restoreExamples = []string{
	"plugintoken restore --from backups/plugintoken-20261127T051500Z.db --db data/plugintoken.db",
}

// runRestore is `plugintoken restore`; it returns the exit code.
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	const name = "plugintoken restore"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "the backup file (required)")
	dbPath := fs.String("db", envOr(getenv, "PLUGINTOKEN_DB", DefaultConfig().DBPath), "the database file to replace (env PLUGINTOKEN_DB)")
	asJSON := fs.Bool("json", false, "print JSON instead of the readable answer")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText(name, "", restoreSummary, restoreExamples, fs))
		return 0
	}
	if err == nil && fs.NArg() > 0 {
		err = usageError("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && *from == "" {
		err = usageError("--from is required")
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	replaced, err := restore(ctx, *from, *dbPath)
	if err != nil {
		return fail(stderr, name, err)
	}
	switch {
	case *asJSON:
		fmt.Fprintf(stdout, "{\"db\":%q,\"from\":%q,\"replaced\":%q}\n", *dbPath, *from, replaced)
	case replaced != "":
		fmt.Fprintf(stdout, "restored %s from %s (the replaced file is %s)\n", *dbPath, *from, replaced)
	default:
		fmt.Fprintf(stdout, "restored %s from %s\n", *dbPath, *from)
	}
	return 0
}

// restore puts the backup from in place of the database at db, and returns
// where the replaced file was kept ("" when there was none).
func restore(ctx context.Context, from, db string) (string, error) {
	if busy, err := inUse(db); err != nil {
		return "", fmt.Errorf("check %s: %w", db, err)
	} else if busy {
		return "", fmt.Errorf("%s is in use by a running server: stop it first", db)
	}
	if abs(from) == abs(db) {
		return "", usageError("--from and --db are the same file")
	}
	src, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return "", err
	}
	// The copy is checked, not the original: what is renamed into place
	// is exactly what was verified.
	tmp, err := os.CreateTemp(filepath.Dir(db), filepath.Base(db)+".restoring-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", from, err)
	}
	if err := verifyBackup(ctx, tmp.Name()); err != nil {
		return "", err
	}
	var replaced string
	if _, err := os.Stat(db); err == nil {
		replaced = db + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(db, replaced); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp.Name(), db); err != nil {
		return "", err
	}
	return replaced, nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
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

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/internal/damage"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// serveOnce runs `plugintoken serve` with args and env until it exits (it
// must, on its own: past two minutes, generous for a busy machine, it is
// killed) and returns its stderr and exit error.
func serveOnce(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	return serveOnceUnder(t, nil, env, args...)
}

// serveOnceUnder is serveOnce with the binary run by the command wrap
// (prlimit, setpriv: a program that runs the rest of its arguments).
func serveOnceUnder(t *testing.T, wrap, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append(slices.Clone(wrap), mustBuild(t), "serve", "--addr", freePort(t))
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve did not exit on its own within two minutes: %s", stderr.String())
	}
	return stderr.String(), err
}

// TestServeDamagedFile starts the binary on database files damaged in the
// ways disks and careless copies damage them: it must exit non-zero with one
// clear line naming the file, never a Go panic and stack trace.
func TestServeDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugintoken.db")
	db, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := db.CreatePlugin(context.Background(), store.Plugin{ID: "plugin-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Scopes: []string{"table|read"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range damage.Kinds() {
		t.Run(name, func(t *testing.T) {
			damaged := filepath.Join(t.TempDir(), "plugintoken.db")
			if err := os.WriteFile(damaged, damage(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			stderr, err := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin}, "--db", damaged)
			if err == nil {
				t.Fatal("serve exited 0 on a damaged file")
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("serve panicked:\n%s", stderr)
			}
			if !strings.Contains(last, damaged) || !strings.Contains(last, "damaged") {
				t.Errorf("last line %q does not say the file %s is damaged", last, damaged)
			}
		})
	}
}

// TestServeRefusesWeakAdminToken: an admin token too short to be a bearer
// credential is refused at start with a clear error, before anything is
// written.
func TestServeRefusesWeakAdminToken(t *testing.T) {
	dir := t.TempDir()
	stderr, err := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=short-but-sixteen-chars"}, "--db", filepath.Join(dir, "plugintoken.db"))
	if err == nil {
		t.Fatal("serve accepted a 23-character admin token")
	}
	if !strings.Contains(stderr, "too short") || !strings.Contains(stderr, "32") {
		t.Errorf("stderr does not explain the refusal: %s", stderr)
	}
}

// TestServeBadAddrWritesNothing: an address that cannot be bound fails
// before an admin token file (or a database) is written.
func TestServeBadAddrWritesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // generous: a busy machine
	defer cancel()
	cmd := exec.CommandContext(ctx, mustBuild(t), "serve", "--addr", "nonsense", "--db", filepath.Join(dir, "data", "plugintoken.db"))
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("serve --addr nonsense exited 0")
	}
	if !strings.Contains(string(out), "listen on nonsense") {
		t.Errorf("output does not name the address: %s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "data")); len(entries) != 0 {
		t.Errorf("files written before the bind failed: %v", entries)
	}
}

// TestServeDurationHint: a duration without its unit says what it expects.
func TestServeDurationHint(t *testing.T) {
	_, err := parseServeFlags(nil, func(k string) string {
		if k == "PLUGINTOKEN_AUTH_CODE_TTL" {
			return "5"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "5m") || !strings.Contains(err.Error(), "300s") {
		t.Errorf("PLUGINTOKEN_AUTH_CODE_TTL=5: %v", err)
	}
	_, err = parseServeFlags([]string{"--access-token-ttl", "10"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "5m") {
		t.Errorf("--access-token-ttl 10: %v", err)
	}
}

// TestRestoreProcedure follows the README's restore steps with the real
// binary: back up, keep working, stop, restore, start. The same admin token
// works; what was done after the backup is undone (a token issued later is
// unknown, one revoked later is active again), as the README says.
func TestRestoreProcedure(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "plugintoken.db")
	p := startProc(t, db)
	c := p.client(t)
	pluginID, reqs := setupExchanges(t, c, 2)
	ok, _, _ := loadUntil(c, pluginID, reqs[:1], 1, make(chan struct{}), nil)
	if len(ok) != 1 {
		t.Fatal("exchange before the backup failed")
	}
	before := ok[0].tok
	env := map[string]string{"PLUGINTOKEN_ADMIN_TOKEN": processAdmin}
	backupFile := filepath.Join(dir, "backups", "b.db")
	if code, out, errOut := runMain(t, env, "backup", "--server", p.url, "--out", backupFile); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errOut)
	}
	later, _, _ := loadUntil(c, pluginID, reqs[1:], 1, make(chan struct{}), nil)
	if len(later) != 1 {
		t.Fatal("exchange after the backup failed")
	}
	if res, err := c.RevokeTokenWithResponse(context.Background(), gen.RevokeRequest{Token: before.AccessToken}); err != nil || res.StatusCode() != 200 {
		t.Fatal("revoke after the backup failed")
	}
	// A running server's file is refused.
	if code, _, errOut := runMain(t, env, "restore", "--from", backupFile, "--db", db); code != 1 || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("restore over a running server: %d %s", code, errOut)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	code, out, errOut := runMain(t, env, "restore", "--from", backupFile, "--db", db)
	if code != 0 || !strings.Contains(out, "restored "+db) {
		t.Fatalf("restore: %d %s %s", code, out, errOut)
	}
	restarted := startProc(t, db)
	rc := restarted.client(t)
	active := func(token string) bool {
		in, err := rc.IntrospectTokenWithResponse(context.Background(), gen.TokenRequest{Token: token})
		if err != nil || in.JSON200 == nil {
			t.Fatalf("introspect after restore (same admin token): %v %s", err, in.Body)
		}
		return in.JSON200.Active
	}
	if !active(before.AccessToken) {
		t.Error("a token revoked after the backup is not active again after the restore")
	}
	if active(later[0].tok.AccessToken) {
		t.Error("a token issued after the backup survived the restore")
	}
}

// TestServeRefusesExposedOrWeakTokenFile: an admin token file that group
// or others can read is refused, as ssh refuses such a key, and so is a
// token of too little entropy (32 × "a"); each error names the file and the
// fix, and nothing is served. Both used to be served with one WARN line.
func TestServeRefusesExposedOrWeakTokenFile(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		mode        os.FileMode
		want        []string
	}{
		{"ReadableByOthers", processAdmin, 0o644, []string{"can be read by group or others", "chmod 600"}},
		{"LowEntropy", strings.Repeat("a", 32), 0o600, []string{"too weak", "entropy", "openssl rand"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "admin-token")
			if err := os.WriteFile(tokenFile, []byte(tc.token+"\n"), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tokenFile, tc.mode); err != nil {
				t.Fatal(err)
			}
			stderr, err := serveOnce(t, nil, "--db", filepath.Join(dir, "plugintoken.db"), "--admin-token-file", tokenFile)
			if err == nil {
				t.Fatal("serve started")
			}
			for _, w := range append(tc.want, tokenFile) {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q: %s", w, stderr)
				}
			}
		})
	}
}

// TestServeOpensHostBackup: a backup of plugintoken's buckets kept in a
// host's database is a database of its own that the real binary serves,
// with the host's buckets left out.
func TestServeOpensHostBackup(t *testing.T) {
	dir := t.TempDir()
	hostDB, err := bolt.Open(filepath.Join(dir, "host.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer hostDB.Close()
	if err := hostDB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("accounts"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.OpenDB(hostDB, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Config: core.Config{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := srv.CreatePlugin(ctx, "Chart", []string{"table|read"})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := srv.IssueAuthCode(ctx, p.ID, "bseA", "")
	pair, err := srv.Exchange(ctx, p.ID, core.TokenRequest{BaseID: "bseA", Secret: p.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	f, err := os.OpenFile(backup, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()

	in, err := startProc(t, backup).client(t).IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: pair.AccessToken})
	if err != nil || in.JSON200 == nil || !in.JSON200.Active {
		t.Fatalf("the token, introspected by `plugintoken serve --db backup.db`: %v %s", err, in.Body)
	}
}

// TestStartupErrorsSayWhatToDo: each way a start can fail says what
// happened and what to do, through the real binary, and a failed start
// leaves no admin token file behind.
func TestStartupErrorsSayWhatToDo(t *testing.T) {
	t.Run("DBIsAFolder", func(t *testing.T) {
		dir := t.TempDir()
		stderr, err := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin}, "--db", dir)
		if err == nil || !strings.Contains(stderr, "is a folder") || strings.Contains(stderr, "damaged") {
			t.Errorf("--db naming a folder: %v\n%s", err, stderr)
		}
	})
	t.Run("NoTokenFileLeftBehind", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(dir, "plugintoken.db")
		if err := os.WriteFile(db, bytes.Repeat([]byte{0x42}, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		stderr, err := serveOnce(t, nil, "--db", db)
		if err == nil || !strings.Contains(stderr, "damaged") {
			t.Fatalf("a damaged file: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "admin-token")); err == nil {
			t.Error("a failed start left a generated admin token file behind")
		}
	})
	t.Run("PortInUse", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		stderr, err := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin}, "--db", filepath.Join(t.TempDir(), "p.db"), "--addr", ln.Addr().String())
		if err == nil || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "--addr") {
			t.Errorf("a port in use: %v\n%s", err, stderr)
		}
	})
	t.Run("EtcdUnreachable", func(t *testing.T) {
		endpoint := freePort(t) // nothing listens there
		stderr, err := serveOnce(t, []string{"PLUGINTOKEN_ADMIN_TOKEN=" + processAdmin}, "--etcd-endpoints", endpoint, "--etcd-dial-timeout", "1500ms")
		if err == nil || !strings.Contains(stderr, endpoint) || !strings.Contains(stderr, "1.5s") {
			t.Errorf("etcd unreachable: %v\n%s", err, stderr)
		}
	})
	t.Run("TruncatedJSON", func(t *testing.T) {
		p := startProc(t, filepath.Join(t.TempDir(), "plugintoken.db"))
		res, err := http.Post(p.url+"/api/plugin/pluXXXXXXXXXXXXXXXX/token", "application/json", strings.NewReader(`{"baseId":"bse1","secret":"x`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 || !strings.Contains(string(body), "ends before its JSON value") {
			t.Errorf("a truncated body: %d %s", res.StatusCode, body)
		}
	})
}

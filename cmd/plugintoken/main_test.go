package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

func TestParseServeFlags(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := parseServeFlags(nil, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := DefaultConfig()
		want.AdminTokenFile = filepath.Join("data", "admin-token")
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got %+v, want %+v", cfg, want)
		}
	})
	t.Run("EveryFlag", func(t *testing.T) {
		cfg, err := parseServeFlags([]string{"--debug-addr", "127.0.0.1:6060", "--max-batch-size", "32", "--max-batch-delay", "2ms",
			"--etcd-endpoints", "a:2379, b:2379", "--etcd-prefix", "/pt/", "--etcd-username", "u", "--etcd-dial-timeout", "7s",
			"--etcd-request-timeout", "4s", "--max-failures", "-1", "--failure-window", "2m", "--shutdown-timeout", "9s",
			"--sweep-interval", "30s", "--refresh-token-ttl", "48h", "--etcd-compact-interval", "0"},
			env("PLUGINTOKEN_ETCD_PASSWORD", "p"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := DefaultConfig()
		want.AdminTokenFile = filepath.Join("data", "admin-token")
		want.DebugAddr, want.MaxBatchSize, want.MaxBatchDelay = "127.0.0.1:6060", 32, 2*time.Millisecond
		want.Etcd.Endpoints, want.Etcd.Prefix, want.Etcd.Username, want.Etcd.Password = []string{"a:2379", "b:2379"}, "/pt/", "u", "p"
		want.Etcd.DialTimeout, want.Etcd.RequestTimeout = 7*time.Second, 4*time.Second
		want.MaxFailures, want.FailureWindow, want.ShutdownTimeout = -1, 2*time.Minute, 9*time.Second
		want.SweepInterval, want.RefreshTokenTTL = 30*time.Second, 48*time.Hour
		want.Etcd.CompactInterval = -1 // 0 on the command line: off
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got  %+v\nwant %+v", cfg, want)
		}
	})
	t.Run("EnvThenFlags", func(t *testing.T) {
		cfg, err := parseServeFlags([]string{"-access-token-ttl", "1m", "--db", "/x/y.db"}, env(
			"PLUGINTOKEN_AUTH_CODE_TTL", "2s",
			"PLUGINTOKEN_ACCESS_TOKEN_TTL", "5m",
			"PLUGINTOKEN_ADDR", "127.0.0.1:9999",
			"PLUGINTOKEN_ADMIN_TOKEN", " tok-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa , ,tok-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
			"PLUGINTOKEN_TOKEN_REQUIRES_BEARER", "true",
			"PLUGINTOKEN_REFRESH_REUSE_GRACE", "3s",
			"PLUGINTOKEN_DB_LOCK_IN_MEMORY", "true",
		), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.AuthCodeTTL != 2*time.Second || cfg.AccessTokenTTL != time.Minute || cfg.Addr != "127.0.0.1:9999" ||
			cfg.DBPath != "/x/y.db" || cfg.AdminTokenFile != "/x/admin-token" ||
			!slices.Equal(cfg.AdminTokens, []string{"tok-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}) ||
			!cfg.TokenRequiresBearer || cfg.RefreshReuseGrace != 3*time.Second || !cfg.LockInMemory {
			t.Errorf("got %+v", cfg)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		env  []string
		msg  string
	}{
		"ErrBadEnvDuration": {nil, []string{"PLUGINTOKEN_REFRESH_TOKEN_TTL", "forever"}, `PLUGINTOKEN_REFRESH_TOKEN_TTL="forever"`},
		"ErrBadFlag":        {[]string{"-nope"}, nil, "flag provided but not defined: -nope"},
		"ErrTTLTooShort":    {[]string{"-auth-code-ttl", "10ms"}, nil, "-auth-code-ttl must be at least 1s, got 10ms"},
		"ErrExtraArgument":  {[]string{"extra"}, nil, `unexpected argument "extra"`},
		"ErrSweepTooOften":  {[]string{"-sweep-interval", "1ms"}, nil, "-sweep-interval must be at least 1s, got 1ms"},
		"ErrNegativeGrace":  {[]string{"-refresh-reuse-grace", "-1s"}, nil, "-refresh-reuse-grace must not be negative, got -1s"},
		"ErrLockWithEtcd":   {[]string{"-db-lock-in-memory", "-etcd-endpoints", "a:2379"}, nil, "-db-lock-in-memory locks the bbolt file, and -etcd-endpoints stores in etcd instead"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseServeFlags(tc.args, env(tc.env...), io.Discard); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestRunCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "plugintoken ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := run(context.Background(), []string{"bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := run(context.Background(), nil, &out, &errb); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}

// lockedBuffer collects a Main's log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// MustStart starts a Main on a free port over the database at dbPath.
func MustStart(tb testing.TB, dbPath string) (*Main, *lockedBuffer) {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DBPath = dbPath
	cfg.AdminTokenFile = defaultAdminTokenFile(dbPath)
	logs := &lockedBuffer{}
	m := NewMain(cfg, logs)
	if err := m.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	return m, logs
}

func TestMainEndToEnd(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "data", "plugintoken.db")
	m, logs := MustStart(t, dbPath)

	// First start without a configured token: one is generated into a
	// private file, whose path (not the token) is logged.
	tokenFile := filepath.Join(filepath.Dir(dbPath), "admin-token")
	st, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin token file mode = %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(tokenFile)
	admin := strings.TrimSpace(string(raw))
	if !strings.Contains(logs.String(), tokenFile) || strings.Contains(logs.String(), admin) {
		t.Errorf("log should name the token file and never the token: %s", logs)
	}

	base := "http://" + m.Addr()
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, res)
	}
	res.Body.Close()

	withAdmin := gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+admin)
		return nil
	})
	c, err := gen.NewClientWithResponses(base+"/api", withAdmin)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "Chart"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v %s", err, p.Body)
	}
	code, err := c.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
	if err != nil || code.JSON200 == nil {
		t.Fatalf("auth code: %v %s", err, code.Body)
	}
	req := gen.PluginTokenRequest{BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: code.JSON200.Code, Scopes: []string{"record|read"}}
	tok, err := c.GetPluginTokenWithResponse(ctx, p.JSON201.ID, req)
	if err != nil || tok.JSON200 == nil {
		t.Fatalf("token: %v %s", err, tok.Body)
	}

	// A second process on the same file fails fast and says why.
	second := NewMain(m.Config, io.Discard)
	start := time.Now()
	err = second.Start()
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("second Start on the same file: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Start took %s", d)
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// After a restart: the token is still active, the generated admin
	// token still works, and the code is still spent.
	m2, _ := MustStart(t, dbPath)
	defer m2.Close()
	c2, _ := gen.NewClientWithResponses("http://"+m2.Addr()+"/api", withAdmin)
	in, err := c2.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: tok.JSON200.AccessToken})
	if err != nil || in.JSON200 == nil || !in.JSON200.Active {
		t.Errorf("token after restart: %v %s", err, in.Body)
	}
	replay, err := c2.PostPluginTokenWithResponse(ctx, p.JSON201.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if replay.StatusCode() != 400 || !strings.Contains(string(replay.Body), "Invalid auth code") {
		t.Errorf("spent code after restart: %d %s", replay.StatusCode(), replay.Body)
	}
	if got, err := c2.GetPluginWithResponse(ctx, p.JSON201.ID); err != nil || got.StatusCode() != 200 {
		t.Errorf("admin token after restart: %v %d", err, got.StatusCode())
	}
}

func TestRunShutsDownOnCancel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DBPath = filepath.Join(t.TempDir(), "plugintoken.db")
	cfg.AdminTokens = []string{processAdmin}
	cfg.AdminTokenFile = filepath.Join(t.TempDir(), "absent")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() { done <- NewMain(cfg, logs).Run(ctx) }()
	// Cancel once it serves (its "serving" line), not after a guess.
	deadline := time.Now().Add(2 * time.Minute) // generous: a busy machine
	for !strings.Contains(logs.String(), `msg=serving`) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not start serving within two minutes:\n%s", logs.String())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Minute): // generous: a busy machine
		t.Fatal("Run did not return within two minutes of cancel")
	}
	// The file was closed: it opens again at once.
	db, err := boltstore.Open(cfg.DBPath, boltstore.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen after shutdown: %v", err)
	}
	db.Close()
	if _, err := os.Stat(cfg.AdminTokenFile); err == nil {
		t.Error("an admin token file was generated although PLUGINTOKEN_ADMIN_TOKEN was set")
	}
}

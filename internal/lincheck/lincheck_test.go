package lincheck

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// The runs are short by default (a few seconds each, part of make test);
// LINCHECK_DURATION and LINCHECK_CLIENTS make them long (make lincheck).
// LINCHECK_BIN checks another plugintoken binary than this tree's (an older
// build, say); LINCHECK_OUT keeps the visualizations of failing runs.
func workload(t *testing.T) Workload {
	d, err := time.ParseDuration(envOr("LINCHECK_DURATION", "3s"))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := strconv.Atoi(envOr("LINCHECK_CLIENTS", "8"))
	if err != nil {
		t.Fatal(err)
	}
	return Workload{Clients: clients, Duration: d, Seed: uint64(time.Now().UnixNano())}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

const admin = "lincheck-admin-token-0123456789-abcdefghijklmnop"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary is the plugintoken binary under test.
func binary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LINCHECK_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lincheck-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "plugintoken")
		cmd := exec.Command("go", "build", "-o", binPath, "./plugintoken")
		cmd.Dir = "../../cmd"
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is one plugintoken process, restartable on the same address.
type process struct {
	t    *testing.T
	addr string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startServer(t *testing.T, args ...string) *process {
	t.Helper()
	s := &process{t: t, addr: freeAddr(t), args: args}
	s.start()
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	return s
}

func (s *process) url() string { return "http://" + s.addr }

func (s *process) start() {
	s.t.Helper()
	args := append([]string{"serve", "--addr", s.addr, "--auth-code-ttl", "1h", "--access-token-ttl", "1h", "--refresh-token-ttl", "2h"}, s.args...)
	cmd := exec.Command(binary(s.t), args...)
	cmd.Env = append(os.Environ(), "PLUGINTOKEN_ADMIN_TOKEN="+admin, "PLUGINTOKEN_MAX_FAILURES=-1")
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute) // generous: a busy machine
	for time.Now().Before(deadline) {
		if res, err := http.Get(s.url() + "/healthz"); err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Errorf("server %s did not answer /healthz within two minutes", s.addr)
}

func (s *process) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-done
}

// check records a history against target and fails the test unless it is
// linearizable.
func check(t *testing.T, target Target, w Workload) {
	t.Helper()
	var h History
	for {
		var err error
		h, err = Record(context.Background(), target, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d operations on %d families by %d clients in %s (%d unknown outcomes, %d refused connections)",
			len(h.Ops), h.Families, w.Clients, w.Duration, h.Unknown, h.Dropped)
		// A busy machine can starve a short run: the run is recorded
		// again, twice as long, until it holds enough operations to prove
		// something (up to two minutes; a workload that disrupts the
		// server runs once).
		if len(h.Ops) >= 100 || w.Disrupt != nil || w.Duration >= 2*time.Minute {
			break
		}
		w.Duration *= 2
	}
	if len(h.Ops) < 100 {
		t.Fatalf("only %d operations: the run proved nothing", len(h.Ops))
	}
	vis := ""
	if dir := os.Getenv("LINCHECK_OUT"); dir != "" {
		vis = filepath.Join(dir, t.Name()+".html")
		_ = os.MkdirAll(filepath.Dir(vis), 0o755)
	} else {
		vis = filepath.Join(t.TempDir(), "visualization.html")
	}
	start := time.Now()
	r, err := Check(h, vis, 15*time.Minute)
	t.Logf("checked in %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != porcupine.Ok {
		t.Fatal(r.String())
	}
}

// TestBbolt checks one server on a bbolt file.
func TestBbolt(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--db", filepath.Join(t.TempDir(), "plugintoken.db"))
	check(t, Target{URLs: []string{s.url()}, Admin: admin}, workload(t))
}

// TestInProcess checks a server embedded in this process, on a bbolt file,
// where the introspections of access tokens go, a third each, through the
// HTTP route, the in-process gateway middleware (RequireToken) and the
// service's Authenticate.
func TestInProcess(t *testing.T) {
	t.Parallel()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "plugintoken.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	auth, err := server.StaticTokens(admin)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Config: core.Config{Store: db, MaxFailures: -1, Logger: slog.New(slog.DiscardHandler),
			AuthCodeTTL: time.Hour, AccessTokenTTL: time.Hour, RefreshTokenTTL: 2 * time.Hour},
		Admin: auth,
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	e.GET("/v1/probe", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, srv.RequireToken("table|read"))
	ts := httptest.NewServer(e)
	defer ts.Close()
	check(t, Target{URLs: []string{ts.URL}, Admin: admin, Probe: "/v1/probe", Authenticate: func(ctx context.Context, token string) error {
		_, err := srv.Authenticate(ctx, token)
		return err
	}}, workload(t))
}

// TestEtcdTwoReplicas checks two servers on one real etcd, each request
// going to either.
func TestEtcdTwoReplicas(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t)
	a := startServer(t, "--etcd-endpoints", etcd.Endpoint)
	b := startServer(t, "--etcd-endpoints", etcd.Endpoint)
	check(t, Target{URLs: []string{a.url(), b.url()}, Admin: admin}, workload(t))
}

// TestRestart checks one server on a bbolt file that is stopped with
// SIGTERM and later killed with SIGKILL mid-history, each time started
// again on the same file and address: nothing acknowledged may be lost or
// revived.
func TestRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--db", filepath.Join(t.TempDir(), "plugintoken.db"))
	w := workload(t)
	restarts := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	w.DisruptAt = []float64{0.33, 0.66}
	w.Disrupt = func() {
		sig := restarts[0]
		restarts = restarts[1:]
		s.stop(sig)
		s.start()
	}
	check(t, Target{URLs: []string{s.url()}, Admin: admin}, w)
	if len(restarts) != 0 {
		t.Fatalf("%d restarts did not happen", len(restarts))
	}
}

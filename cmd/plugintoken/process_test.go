package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// These tests run the real binary as a separate process, to kill it.

const processAdmin = "process-test-admin-token-0123456789-abcdef"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mustBuild builds the plugintoken binary once per test run.
func mustBuild(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plugintoken-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "plugintoken")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running plugintoken process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() error {
	<-p.exited
	return p.err
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProc starts the binary on dbPath, with the serve flags args, and
// waits until it is healthy.
func startProc(t *testing.T, dbPath string, args ...string) *proc {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(mustBuild(t), append([]string{"serve", "--addr", addr, "--db", dbPath, "--shutdown-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "PLUGINTOKEN_ADMIN_TOKEN="+processAdmin, "PLUGINTOKEN_MAX_FAILURES=-1")
	p := &proc{cmd: cmd, url: "http://" + addr, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = p.wait()
	})
	// Generous: a busy machine may take long to start a process; the
	// message says what was slow.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if res, err := http.Get(p.url + "/healthz"); err == nil {
			res.Body.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not answer /healthz within two minutes: %s", p.stderr)
	return nil
}

func (p *proc) client(t *testing.T) *gen.ClientWithResponses {
	t.Helper()
	c, err := gen.NewClientWithResponses(p.url+"/api", gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+processAdmin)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchanged is one exchange that got a 200.
type exchanged struct {
	req gen.PluginTokenRequest
	tok gen.PluginTokenResponse
}

// loadUntil runs exchanges with workers goroutines over codes until they
// run out or stop is closed, and returns the ones that got a 200, the
// statuses of all answers, and the number of transport errors. It counts
// the 200s in progress as it goes.
func loadUntil(c *gen.ClientWithResponses, pluginID string, reqs []gen.PluginTokenRequest, workers int, stop <-chan struct{}, progress *atomic.Int64) ([]exchanged, map[int]int, int) {
	var mu sync.Mutex
	var ok []exchanged
	statuses := map[int]int{}
	transport := 0
	next := make(chan gen.PluginTokenRequest)
	go func() {
		defer close(next)
		for _, r := range reqs {
			select {
			case next <- r:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for r := range next {
				res, err := c.PostPluginTokenWithResponse(context.Background(), pluginID, r)
				mu.Lock()
				switch {
				case err != nil:
					transport++
				default:
					statuses[res.StatusCode()]++
					if res.JSON200 != nil {
						ok = append(ok, exchanged{r, *res.JSON200})
						if progress != nil {
							progress.Add(1)
						}
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok, statuses, transport
}

// setupExchanges creates a plugin and n auth codes, and returns the token
// requests that redeem them.
func setupExchanges(t *testing.T, c *gen.ClientWithResponses, n int) (string, []gen.PluginTokenRequest) {
	t.Helper()
	ctx := context.Background()
	p, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "crash"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}
	reqs := make([]gen.PluginTokenRequest, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				code, err := c.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
				if err != nil || code.JSON200 == nil {
					errs <- fmt.Errorf("auth code: %v", err)
					return
				}
				reqs[i] = gen.PluginTokenRequest{BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: code.JSON200.Code, Scopes: []string{"table|read"}}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return p.JSON201.ID, reqs
}

// waitFor polls until n reaches at least want, or fails the test.
func waitFor(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // generous: a busy machine
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d exchanges succeeded in two minutes (want %d)", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCrashLosesNothingAcknowledged kills the server with SIGKILL in the
// middle of concurrent exchanges and restarts it on the same file: every
// exchange that got a 200 still has an active token, no redeemed code can be
// redeemed again, and the file opens (and checks) without repair.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "plugintoken.db")
	p := startProc(t, dbPath)
	c := p.client(t)
	pluginID, reqs := setupExchanges(t, c, 3000)

	stop := make(chan struct{})
	results := make(chan []exchanged, 1)
	var progress atomic.Int64
	go func() {
		ok, _, _ := loadUntil(c, pluginID, reqs, 16, stop, &progress)
		results <- ok
	}()
	waitFor(t, &progress, 100)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	close(stop)
	ok := <-results
	if len(ok) == 0 || len(ok) == len(reqs) {
		t.Fatalf("%d of %d exchanges succeeded before the kill; the test needs the kill to land mid-load", len(ok), len(reqs))
	}
	t.Logf("%d exchanges acknowledged before SIGKILL", len(ok))

	p2 := startProc(t, dbPath)
	c2 := p2.client(t)
	ctx := context.Background()
	for _, e := range ok {
		in, err := c2.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: e.tok.AccessToken})
		if err != nil || in.JSON200 == nil || !in.JSON200.Active {
			t.Fatalf("an acknowledged token is gone after the crash: %v %s", err, in.Body)
		}
	}
	for _, e := range ok {
		again, err := c2.PostPluginTokenWithResponse(ctx, pluginID, e.req)
		if err != nil {
			t.Fatal(err)
		}
		if again.StatusCode() != http.StatusBadRequest {
			t.Fatalf("a redeemed code was redeemed again after the crash: %d %s", again.StatusCode(), again.Body)
		}
	}
	stopProc(t, p2)
	db, err := boltstore.Open(dbPath, boltstore.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// stopProc sends SIGTERM and expects exit code 0.
func stopProc(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.stderr)
		}
	case <-time.After(2 * time.Minute): // generous: a busy machine
		t.Fatalf("no exit two minutes after SIGTERM\n%s", p.stderr)
	}
}

// TestSIGTERMUnderLoad stops the server while exchanges are running:
// in-flight requests complete, new ones are refused, the file is closed
// cleanly and the process exits 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "plugintoken.db")
	p := startProc(t, dbPath)
	c := p.client(t)
	pluginID, reqs := setupExchanges(t, c, 3000)

	stop := make(chan struct{})
	var progress atomic.Int64
	type outcome struct {
		ok        []exchanged
		statuses  map[int]int
		transport int
	}
	results := make(chan outcome, 1)
	go func() {
		ok, statuses, transport := loadUntil(c, pluginID, reqs, 16, stop, &progress)
		results <- outcome{ok, statuses, transport}
	}()
	waitFor(t, &progress, 100)
	stopProc(t, p)
	close(stop)
	r := <-results
	t.Logf("answers %v, transport errors %d", r.statuses, r.transport)
	for status, n := range r.statuses {
		if status != http.StatusOK {
			t.Errorf("%d answers had status %d during shutdown", n, status)
		}
	}
	if len(r.ok) == 0 {
		t.Fatal("no exchange completed before the shutdown")
	}
	if !strings.Contains(p.stderr.String(), "database closed") {
		t.Errorf("no clean close in the log:\n%s", p.stderr)
	}
	// New connections are refused once it has stopped.
	if _, err := http.Get(p.url + "/healthz"); err == nil {
		t.Error("the server still answers after its exit")
	}
	// The lock was released and everything acknowledged is there.
	db, err := boltstore.Open(dbPath, boltstore.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen right after exit: %v", err)
	}
	defer db.Close()
	if err := db.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBackupCommand takes a hot backup through the CLI while the server
// runs, and serves the backup: the same plugin and live tokens are there.
func TestBackupCommand(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, filepath.Join(dir, "plugintoken.db"))
	c := p.client(t)
	pluginID, reqs := setupExchanges(t, c, 3)
	ok, _, _ := loadUntil(c, pluginID, reqs, 1, make(chan struct{}), nil)
	if len(ok) != 3 {
		t.Fatalf("%d exchanges", len(ok))
	}

	out := filepath.Join(dir, "backup.db")
	var stdout, stderr bytes.Buffer
	env := func(k string) string {
		if k == "PLUGINTOKEN_ADMIN_TOKEN" {
			return processAdmin
		}
		return ""
	}
	if code := runBackup(context.Background(), []string{"--server", p.url, "--out", out}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote "+out) {
		t.Errorf("stdout = %q", stdout.String())
	}

	restored := startProc(t, out)
	rc := restored.client(t)
	if got, err := rc.GetPluginWithResponse(context.Background(), pluginID); err != nil || got.JSON200 == nil {
		t.Fatalf("plugin missing from the backup: %v", err)
	}
	for _, e := range ok {
		in, err := rc.IntrospectTokenWithResponse(context.Background(), gen.TokenRequest{Token: e.tok.AccessToken})
		if err != nil || in.JSON200 == nil || !in.JSON200.Active {
			t.Errorf("token missing from the backup: %v %s", err, in.Body)
		}
	}

	t.Run("ErrOutIsLiveDatabase", func(t *testing.T) {
		// --out naming the running server's own file must not replace it.
		live := filepath.Join(dir, "plugintoken.db")
		before, err := os.ReadFile(live)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := runBackup(context.Background(), []string{"--server", p.url, "--out", live}, env, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "in use") {
			t.Fatalf("backup over the live database: exit %d %s, want a refusal", code, stderr.String())
		}
		after, err := os.ReadFile(live)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Error("the live database file was changed")
		}
		// The server still owns its file: it keeps answering from it.
		if got, err := c.GetPluginWithResponse(context.Background(), pluginID); err != nil || got.JSON200 == nil {
			t.Fatalf("server lost its plugin: %v", err)
		}
	})

	t.Run("ErrWrongToken", func(t *testing.T) {
		env := func(k string) string {
			if k == "PLUGINTOKEN_ADMIN_TOKEN" {
				return "not-the-admin-token-xxxxxx"
			}
			return ""
		}
		code := runBackup(context.Background(), []string{"--server", p.url, "--out", filepath.Join(dir, "x.db")}, env, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "401") {
			t.Errorf("exit %d %s, want a 401", code, stderr.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "x.db")); !errors.Is(err, os.ErrNotExist) {
			t.Error("a failed backup left a file")
		}
	})
}

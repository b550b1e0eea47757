package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/internal/etcdtest"
)

// startOnEtcdWith starts a Main on etcd at endpoint with cfg changed by
// tune, logging into a buffer, and returns it with an admin client.
func startOnEtcdWith(t *testing.T, endpoint string, tune func(*Config)) (*Main, *gen.ClientWithResponses, *lockedBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DBPath = t.TempDir() + "/unused.db"
	cfg.AdminTokenFile = t.TempDir() + "/absent"
	cfg.AdminTokens = []string{processAdmin}
	cfg.MaxFailures = -1
	cfg.Etcd.Endpoints = []string{endpoint}
	// Generous: the machine may be busy; a 503 here would be a test of
	// the machine, not of plugintoken.
	cfg.Etcd.RequestTimeout = 30 * time.Second
	tune(&cfg)
	logs := &lockedBuffer{}
	m := NewMain(cfg, logs)
	if err := m.Start(); err != nil {
		t.Fatalf("Start on etcd: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	c, err := gen.NewClientWithResponses("http://"+m.Addr()+"/api", gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+processAdmin)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return m, c, logs
}

func etcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// eventually polls cond until it holds, for at most a minute: long enough
// for a busy machine, and the message says what was slow.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, still not: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEtcdNoSpaceReadiness fills a small etcd until it raises its NOSPACE
// alarm: /readyz turns 503, one ERROR line names the cause and the fix, the
// alarm metric shows it, and writes answer 503. After the operator's fix
// (compact, defrag, disarm) the service recovers by itself: ready, and
// issuing tokens again.
func TestEtcdNoSpaceReadiness(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.StartWith(t, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 4 << 20 })
	m, c, logs := startOnEtcdWith(t, etcd.Endpoint, func(cfg *Config) { cfg.Etcd.CompactInterval = -1 })
	base := "http://" + m.Addr()
	ctx := context.Background()
	p, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "quota"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}

	// Another tenant of the etcd fills it.
	ec := etcdClient(t, etcd.Endpoint)
	filler := strings.Repeat("x", 256<<10)
	for i := 0; ; i++ {
		_, err := ec.Put(ctx, "/filler/"+string(rune('a'+i%26))+strings.Repeat("k", i/26), filler)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > 1000 {
			t.Fatal("a 4 MiB quota took 250 MiB of writes without NOSPACE")
		}
	}

	if status, body := get(t, base+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("readyz under NOSPACE: %d %s, want 503", status, body)
	}
	if res, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "more"}); err != nil || res.StatusCode() != http.StatusServiceUnavailable {
		t.Errorf("a write under NOSPACE: %v %d, want 503", err, res.StatusCode())
	}
	eventually(t, "an ERROR line naming NOSPACE and its fix", func() bool {
		return strings.Contains(logs.String(), "level=ERROR msg=\"etcd raised its NOSPACE alarm")
	})
	for _, want := range []string{"etcdctl defrag", "etcdctl alarm disarm", "compact"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the ERROR line does not say %q:\n%s", want, logs)
		}
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, `plugintoken_etcd_alarm{alarm="nospace"} 1`) {
		t.Error("the alarm metric does not show NOSPACE")
	}

	// The operator's fix.
	if _, err := ec.Delete(ctx, "/filler/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	st, err := ec.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Compact(ctx, st.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Defragment(ctx, etcd.Endpoint); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, "ready after defrag and disarm", func() bool { s, _ := get(t, base+"/readyz"); return s == http.StatusOK })
	code, err := c.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
	if err != nil || code.JSON200 == nil {
		t.Fatalf("auth code after recovery: %v %s", err, code.Body)
	}
	tok, err := c.PostPluginTokenWithResponse(ctx, p.JSON201.ID, gen.PluginTokenRequest{
		BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: code.JSON200.Code, Scopes: []string{"table|read"}})
	if err != nil || tok.JSON200 == nil {
		t.Fatalf("exchange after recovery: %v %s", err, tok.Body)
	}
	eventually(t, "an INFO line saying etcd accepts writes again", func() bool {
		return strings.Contains(logs.String(), "etcd accepts writes again")
	})
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, `plugintoken_etcd_alarm{alarm="nospace"} 0`) {
		t.Error("the alarm metric still shows NOSPACE")
	}
}

// TestEtcdHistoryStaysBounded runs sustained exchange load (two minutes by
// default, ETCD_SOAK to change it) against an etcd with a 24 MiB quota and
// etcd's defaults, which compact nothing: plugintoken's own compaction
// keeps the history bounded, and the alarm is never raised. Without it,
// the same load fills the quota in about a minute.
func TestEtcdHistoryStaysBounded(t *testing.T) {
	t.Parallel()
	soak := 2 * time.Minute
	if v := os.Getenv("ETCD_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		soak = d
	}
	etcd := etcdtest.StartWith(t, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 24 << 20 })
	_, c, _ := startOnEtcdWith(t, etcd.Endpoint, func(cfg *Config) {
		cfg.Etcd.CompactInterval = 2 * time.Second
		// Codes live 10 s: on a busy machine under -race a code's issue and
		// its exchange can be more than a second apart (a 1 s lifetime
		// failed 3 of 6,513 exchanges with "Invalid auth code" in one CI
		// run). Tokens still expire within seconds, so the load keeps
		// writing and the sweep keeps deleting.
		cfg.AuthCodeTTL, cfg.AccessTokenTTL, cfg.RefreshTokenTTL = 10*time.Second, time.Second, 3*time.Second
		cfg.SweepInterval = time.Second
	})
	ec := etcdClient(t, etcd.Endpoint)
	ctx := context.Background()
	p, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "soak"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}

	var exchanges, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := c.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
				if err == nil && code.JSON200 != nil {
					var tok *gen.PostPluginTokenResponse
					tok, err = c.PostPluginTokenWithResponse(ctx, p.JSON201.ID, gen.PluginTokenRequest{
						BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: code.JSON200.Code, Scopes: []string{"table|read"}})
					if err == nil && tok.JSON200 != nil {
						exchanges.Add(1)
						continue
					}
					if err == nil {
						err = errors.New(tok.Status() + " " + string(tok.Body))
					}
				} else if err == nil {
					err = errors.New(code.Status() + " " + string(code.Body))
				}
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
		})
	}
	var maxSize int64
	deadline := time.Now().Add(soak)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		alarms, err := ec.AlarmList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms.Alarms) > 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("etcd raised %v after %d exchanges", alarms.Alarms, exchanges.Load())
		}
		if st, err := ec.Status(ctx, etcd.Endpoint); err == nil {
			maxSize = max(maxSize, st.DbSize)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%s of load: %d exchanges, %d failures; etcd's database reached %.1f MiB of its 24 MiB quota",
		soak, exchanges.Load(), failures.Load(), float64(maxSize)/(1<<20))
	if failures.Load() > 0 {
		t.Errorf("%d requests failed; the first: %v", failures.Load(), firstFailure.Load())
	}
	if exchanges.Load() == 0 {
		t.Error("no exchange succeeded")
	}
}

// TestBackupOnEtcdPointsToSnapshot: `plugintoken backup` against a server
// on etcd fails saying what to do instead.
func TestBackupOnEtcdPointsToSnapshot(t *testing.T) {
	etcd := etcdtest.Start(t)
	m, _, _ := startOnEtcdWith(t, etcd.Endpoint, func(*Config) {})
	code, _, errOut := runMain(t, map[string]string{"PLUGINTOKEN_ADMIN_TOKEN": processAdmin}, "backup", "--server", m.Addr(), "--out", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "etcdctl snapshot save") {
		t.Errorf("backup on etcd: exit %d, %s", code, errOut)
	}
}

// TestReplicasCompactingAtOnce: two replicas compact etcd's history every
// 100 ms while one issues and exchanges codes and the other introspects
// each new token (a first read, at the grant's revision): no request
// fails, and both replicas compacted (or found the other had).
func TestReplicasCompactingAtOnce(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t)
	fast := func(cfg *Config) { cfg.Etcd.CompactInterval = 100 * time.Millisecond }
	a, ca, _ := startOnEtcdWith(t, etcd.Endpoint, fast)
	b, cb, _ := startOnEtcdWith(t, etcd.Endpoint, fast)
	ctx := context.Background()
	p, err := ca.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "compact"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		code, err := ca.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
		if err != nil || code.JSON200 == nil {
			t.Fatalf("auth code %d: %v %s", n, err, code.Body)
		}
		tok, err := ca.PostPluginTokenWithResponse(ctx, p.JSON201.ID, gen.PluginTokenRequest{
			BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: code.JSON200.Code, Scopes: []string{"table|read"}})
		if err != nil || tok.JSON200 == nil {
			t.Fatalf("exchange %d: %v %s", n, err, tok.Body)
		}
		in, err := cb.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: tok.JSON200.AccessToken})
		if err != nil || in.JSON200 == nil || !in.JSON200.Active {
			t.Fatalf("introspection %d on the other replica: %v %s", n, err, in.Body)
		}
		n++
	}
	for name, m := range map[string]*Main{"A": a, "B": b} {
		_, body := get(t, "http://"+m.Addr()+"/metrics")
		if strings.Contains(body, `plugintoken_etcd_compactions_total{result="ok"} 0`) &&
			strings.Contains(body, `plugintoken_etcd_compactions_total{result="already"} 0`) {
			t.Errorf("replica %s never compacted", name)
		}
	}
	t.Logf("%d exchanges and introspections", n)
}

package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/internal/etcdtest"
)

// mustStartOnEtcd starts a Main on the shared etcd at endpoint.
func mustStartOnEtcd(t *testing.T, endpoint string) (*Main, *gen.ClientWithResponses) {
	t.Helper()
	m, c, _ := startOnEtcdWith(t, endpoint, func(*Config) {})
	return m, c
}

// TestTwoReplicasShareEtcd runs two servers on one etcd: what one does, the
// other sees at once, and a code is redeemed once across both.
func TestTwoReplicasShareEtcd(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	_, a := mustStartOnEtcd(t, etcd.Endpoint)
	_, b := mustStartOnEtcd(t, etcd.Endpoint)

	p, err := a.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "shared"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin on A: %v", err)
	}
	plugin := *p.JSON201
	code := func(c *gen.ClientWithResponses) string {
		res, err := c.CreateAuthCodeWithResponse(ctx, plugin.ID, gen.AuthCodeRequest{BaseID: "bse1"})
		if err != nil || res.JSON200 == nil {
			t.Fatalf("auth code: %v", err)
		}
		return res.JSON200.Code
	}
	request := func(code string) gen.PluginTokenRequest {
		return gen.PluginTokenRequest{BaseID: "bse1", Secret: plugin.Secret, AuthCode: code, Scopes: []string{"table|read"}}
	}

	// A code issued through A is redeemed through B.
	tok, err := b.PostPluginTokenWithResponse(ctx, plugin.ID, request(code(a)))
	if err != nil || tok.JSON200 == nil {
		t.Fatalf("redeem on B a code issued on A: %v %s", err, tok.Body)
	}

	// A token issued by A introspects active on B (and one by B on A).
	fromA, err := a.PostPluginTokenWithResponse(ctx, plugin.ID, request(code(b)))
	if err != nil || fromA.JSON200 == nil {
		t.Fatalf("redeem on A: %v %s", err, fromA.Body)
	}
	for _, check := range []struct {
		c     *gen.ClientWithResponses
		token string
	}{{b, fromA.JSON200.AccessToken}, {a, tok.JSON200.AccessToken}} {
		in, err := check.c.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: check.token})
		if err != nil || in.JSON200 == nil || !in.JSON200.Active {
			t.Fatalf("introspect on the other replica: %v %s", err, in.Body)
		}
	}

	// A revocation on B is seen on A at once.
	if res, err := b.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: tok.JSON200.RefreshToken}); err != nil || res.StatusCode() != 200 {
		t.Fatalf("revoke on B: %v", err)
	}
	for _, token := range []string{tok.JSON200.AccessToken, tok.JSON200.RefreshToken} {
		in, err := a.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: token})
		if err != nil || in.JSON200 == nil || in.JSON200.Active {
			t.Errorf("revoked on B, still active on A: %v %s", err, in.Body)
		}
	}

	// 50 concurrent redemptions of one code, spread over A and B: one wins.
	shared := request(code(b))
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 50 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			res, err := c.PostPluginTokenWithResponse(ctx, plugin.ID, shared)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				return
			}
			statuses[res.StatusCode()]++
		})
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[200]+statuses[400] != 50 {
		t.Errorf("statuses of 50 concurrent redemptions over two replicas: %v, want one 200 and 49 400", statuses)
	}
}

// TestEtcdOutage stops etcd under a running server: requests answer 503 in
// the JSON error shape within a bounded time, /readyz fails, and service
// resumes by itself when etcd is back.
func TestEtcdOutage(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	// A short request timeout: the outage must be answered quickly.
	m, c, _ := startOnEtcdWith(t, etcd.Endpoint, func(cfg *Config) { cfg.Etcd.RequestTimeout = 2 * time.Second })
	p, err := c.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "outage"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}
	codeRes, err := c.CreateAuthCodeWithResponse(ctx, p.JSON201.ID, gen.AuthCodeRequest{BaseID: "bse1"})
	if err != nil || codeRes.JSON200 == nil {
		t.Fatal(err)
	}
	req := gen.PluginTokenRequest{BaseID: "bse1", Secret: p.JSON201.Secret, AuthCode: codeRes.JSON200.Code, Scopes: []string{"table|read"}}

	etcd.Stop()
	start := time.Now()
	res, err := c.PostPluginTokenWithResponse(ctx, p.JSON201.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the exchange took %s to fail", took)
	}
	if res.StatusCode() != http.StatusServiceUnavailable || !strings.Contains(string(res.Body), `"code":"service_unavailable"`) {
		t.Errorf("exchange during the outage: %d %s", res.StatusCode(), res.Body)
	}
	if ready, err := http.Get("http://" + m.Addr() + "/readyz"); err != nil || ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage: %v %v", err, ready)
	}

	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute) // generous: a busy machine
	for {
		r, err := http.Get("http://" + m.Addr() + "/readyz")
		if err == nil && r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready two minutes after etcd came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The failed exchange wrote nothing: the code is still good.
	again, err := c.PostPluginTokenWithResponse(ctx, p.JSON201.ID, req)
	if err != nil || again.JSON200 == nil {
		t.Fatalf("exchange after etcd came back: %v %d %s", err, again.StatusCode(), again.Body)
	}
}

// TestRefreshRaceTwoReplicas presents one refresh token from two (and from
// eight) concurrent requests spread over two servers on one etcd, round
// after round: exactly one gets a new pair, and with no grace the family is
// revoked afterwards, the winner's new pair included.
func TestRefreshRaceTwoReplicas(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	_, a := mustStartOnEtcd(t, etcd.Endpoint)
	_, b := mustStartOnEtcd(t, etcd.Endpoint)
	p, err := a.CreatePluginWithResponse(ctx, gen.CreatePluginRequest{Name: "race"})
	if err != nil || p.JSON201 == nil {
		t.Fatalf("create plugin: %v", err)
	}
	plugin := *p.JSON201
	for _, n := range []int{2, 8} {
		for round := range 15 {
			code, err := a.CreateAuthCodeWithResponse(ctx, plugin.ID, gen.AuthCodeRequest{BaseID: "bse1"})
			if err != nil || code.JSON200 == nil {
				t.Fatal(err)
			}
			tok, err := b.PostPluginTokenWithResponse(ctx, plugin.ID, gen.PluginTokenRequest{BaseID: "bse1", Secret: plugin.Secret,
				AuthCode: code.JSON200.Code, Scopes: []string{"table|read"}})
			if err != nil || tok.JSON200 == nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []gen.PluginTokenResponse
			for i := range n {
				c := []*gen.ClientWithResponses{a, b}[i%2]
				wg.Go(func() {
					res, err := c.RefreshPluginTokenWithResponse(ctx, plugin.ID, gen.RefreshTokenRequest{RefreshToken: tok.JSON200.RefreshToken, Secret: plugin.Secret})
					if err != nil {
						t.Error(err)
						return
					}
					if res.JSON200 != nil {
						mu.Lock()
						winners = append(winners, *res.JSON200)
						mu.Unlock()
					} else if res.StatusCode() != http.StatusBadRequest {
						t.Errorf("refresh: %d %s", res.StatusCode(), res.Body)
					}
				})
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("%d-way round %d: %d refreshes answered 200, want exactly 1", n, round, len(winners))
			}
			for _, c := range []*gen.ClientWithResponses{a, b} {
				for _, token := range []string{winners[0].AccessToken, winners[0].RefreshToken} {
					in, err := c.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: token})
					if err != nil || in.JSON200 == nil || in.JSON200.Active {
						t.Fatalf("%d-way round %d: the winner's token is active after the reuse revoked the family: %v %s", n, round, err, in.Body)
					}
				}
			}
		}
	}
}

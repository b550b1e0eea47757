package lincheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
)

// Target is a running plugintoken: one or more replicas sharing one store.
type Target struct {
	// URLs are the replicas' base URLs (http://host:port); each request
	// goes to one of them at random.
	URLs []string
	// Admin is an admin bearer token.
	Admin string
	// Probe, when set, is the path of a route the target protects with the
	// in-process middleware (RequireToken); a third of the introspections
	// of access tokens then ask it instead (200: active, 401: not).
	Probe string
	// Authenticate, when set, is the service's in-process check of an
	// access token (no HTTP at all); another third of the introspections
	// of access tokens ask it (nil error: active).
	Authenticate func(ctx context.Context, token string) error
}

// Workload shapes a run.
type Workload struct {
	// Clients run concurrently, each one operation at a time.
	Clients int
	// Duration of the run.
	Duration time.Duration
	// Disrupt, when set, is called once at each of the given fractions of
	// the run (for example a restart of the server); clients go on meanwhile.
	Disrupt    func()
	DisruptAt  []float64
	NewCodeGap time.Duration // how often a new code joins the pool; default 15 ms
	Window     int           // how many of the newest families clients pick from; default Clients/3, at least 3
	Seed       uint64
}

// History is what the clients observed.
type History struct {
	Ops []porcupine.Operation
	// Unknown counts operations with no clear answer; Dropped, requests
	// refused before they reached a server (connection refused), which
	// therefore did not happen and are left out.
	Unknown, Dropped int
	Families         int
}

// family is one auth code and the tokens clients have seen descend from it.
type family struct {
	code string
	// claimed is set by the client that makes the first redemption, so
	// that the others do not all replay the code at once.
	claimed atomic.Bool
	// inflight bounds the requests on the family at once (maxInflight): the
	// checker's search grows exponentially with the operations of one
	// family in flight together, so more clients make more families busy,
	// not busier families.
	inflight atomic.Int32
	mu       sync.Mutex
	tokens   []string
}

// maxInflight is how many requests one family may have in flight at once.
const maxInflight = 6

// acquire reserves up to n of the family's in-flight slots and returns how
// many it got.
func (f *family) acquire(n int) int {
	for {
		cur := f.inflight.Load()
		got := min(int32(n), maxInflight-cur)
		if got <= 0 {
			return 0
		}
		if f.inflight.CompareAndSwap(cur, cur+got) {
			return int(got)
		}
	}
}

func (f *family) add(tokens ...string) {
	f.mu.Lock()
	f.tokens = append(f.tokens, tokens...)
	f.mu.Unlock()
}

func (f *family) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens
}

func (f *family) pick(r *rand.Rand, refreshOnly bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cands []string
	for _, t := range f.tokens {
		if !refreshOnly || isRefresh(t) {
			cands = append(cands, t)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	// Mostly the newest token (the live one, so that clients race for it),
	// but old ones too (reuse, and reads of dead tokens).
	if r.IntN(100) < 85 {
		return cands[len(cands)-1]
	}
	return cands[r.IntN(len(cands))]
}

// client talks to a target.
type client struct {
	target Target
	http   *http.Client
	plugin struct{ id, secret string }
}

// errRefused marks a request that never reached a server.
var errRefused = errors.New("connection refused")

// call sends one JSON request and decodes a JSON answer into out (when the
// status is 2xx). It returns the status; a transport error is errRefused
// when the connection was refused (nothing was sent), else the error.
func (c *client) call(ctx context.Context, url, path string, admin bool, in, out any) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("Authorization", "Bearer "+c.target.Admin)
	}
	res, err := c.http.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return 0, errRefused
	}
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if res.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, fmt.Errorf("decode %s answer %s: %w", path, raw, err)
		}
	}
	return res.StatusCode, nil
}

// probe asks the in-process middleware about an access token.
func (c *client) probe(ctx context.Context, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+c.target.Probe, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// setup registers the plugin the run works on.
func (c *client) setup(ctx context.Context) error {
	var p struct{ ID, Secret string }
	status, err := c.call(ctx, c.target.URLs[0], "/api/plugin", true, map[string]any{"name": "lincheck", "scopes": []string{"table|read"}}, &p)
	if err != nil || status != http.StatusCreated {
		return fmt.Errorf("create plugin: status %d, %v", status, err)
	}
	c.plugin.id, c.plugin.secret = p.ID, p.Secret
	return nil
}

// newCode issues an auth code (retrying while the target restarts).
func (c *client) newCode(ctx context.Context) (string, error) {
	for {
		var out struct{ Code string }
		status, err := c.call(ctx, c.target.URLs[rand.IntN(len(c.target.URLs))], "/api/plugin/"+c.plugin.id+"/authCode", true, map[string]string{"baseId": "bse1"}, &out)
		if err == nil && status == http.StatusOK {
			return out.Code, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do runs one operation and returns its answer; ok is false when the
// request never reached a server.
func (c *client) do(ctx context.Context, url string, in Input) (Output, bool) {
	var status int
	var err error
	var o Output
	switch in.Op {
	case Redeem, Refresh:
		var pair struct{ AccessToken, RefreshToken string }
		if in.Op == Redeem {
			status, err = c.call(ctx, url, "/api/plugin/"+c.plugin.id+"/token", false, map[string]any{
				"baseId": "bse1", "secret": c.plugin.secret, "scopes": []string{"table|read"}, "authCode": in.Token}, &pair)
		} else {
			status, err = c.call(ctx, url, "/api/plugin/"+c.plugin.id+"/refreshToken", false, map[string]any{
				"refreshToken": in.Token, "secret": c.plugin.secret}, &pair)
		}
		o.OK, o.Access, o.Refresh = status == http.StatusOK, pair.AccessToken, pair.RefreshToken
	case Revoke:
		status, err = c.call(ctx, url, "/api/token/revoke", false, map[string]any{
			"token": in.Token, "pluginId": c.plugin.id, "secret": c.plugin.secret}, nil)
		o.OK = status == http.StatusOK
	case Introspect:
		path := rand.IntN(3)
		if c.target.Authenticate != nil && !isRefresh(in.Token) && path == 0 {
			err := c.target.Authenticate(ctx, in.Token)
			o.Active = err == nil
			if err != nil && !strings.Contains(err.Error(), "unauthorized") {
				return Output{Unknown: true}, true
			}
			return o, true
		}
		if c.target.Probe != "" && !isRefresh(in.Token) && path == 1 {
			status, err = c.probe(ctx, url, in.Token)
			o.Active = status == http.StatusOK
			if status == http.StatusUnauthorized {
				status = http.StatusOK // a clear "not active"
			}
			break
		}
		var ans struct{ Active bool }
		status, err = c.call(ctx, url, "/api/token/introspect", true, map[string]string{"token": in.Token}, &ans)
		o.Active = ans.Active
	}
	switch {
	case errors.Is(err, errRefused):
		return o, false
	case err != nil, status >= 500, status == 0:
		return Output{Unknown: true}, true
	case in.Op == Introspect && status != http.StatusOK:
		return Output{Unknown: true}, true
	}
	return o, true
}

// Record runs the workload against the target and returns the history.
func Record(ctx context.Context, target Target, w Workload) (History, error) {
	if w.NewCodeGap == 0 {
		w.NewCodeGap = 15 * time.Millisecond
	}
	if w.Window == 0 {
		// About three clients on each family: enough that races are
		// frequent, few enough that checking a family stays fast (the
		// checker's search grows with the operations in flight at once).
		w.Window = max(3, w.Clients/3)
	}
	c := &client{target: target, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := c.setup(ctx); err != nil {
		return History{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.Duration)
	defer cancel()

	var mu sync.Mutex
	var h History
	var families []*family
	addFamily := func() error {
		code, err := c.newCode(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		families = append(families, &family{code: code})
		h.Families++
		mu.Unlock()
		return nil
	}
	if err := addFamily(); err != nil {
		return h, err
	}
	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }

	var wg sync.WaitGroup
	wg.Go(func() { // the pool of codes
		t := time.NewTicker(w.NewCodeGap)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = addFamily()
			}
		}
	})
	if w.Disrupt != nil {
		wg.Go(func() {
			for _, at := range w.DisruptAt {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(start.Add(time.Duration(at * float64(w.Duration))))):
					w.Disrupt()
				}
			}
		})
	}
	// record runs one operation and adds it to the history.
	// It reports false when the request never reached a server.
	record := func(clientID int, url string, f *family, in Input) bool {
		call := now()
		// A request in flight when the run ends still gets its answer: the
		// history must not record a cancellation as an unknown outcome.
		out, happened := c.do(context.WithoutCancel(ctx), url, in)
		ret := now()
		mu.Lock()
		defer mu.Unlock()
		if !happened {
			h.Dropped++
			return false
		}
		if out.Unknown {
			h.Unknown++
			ret = math.MaxInt64 / 2 // it may take effect at any time later
		}
		if out.OK && out.Access != "" {
			f.add(out.Access, out.Refresh)
		}
		h.Ops = append(h.Ops, porcupine.Operation{ClientId: clientID, Input: in, Call: call, Output: out, Return: ret})
		return true
	}
	for id := range w.Clients {
		r := rand.New(rand.NewPCG(w.Seed, uint64(id)))
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				f := families[len(families)-1-r.IntN(min(w.Window, len(families)))]
				mu.Unlock()
				in := Input{Family: f.code}
				switch p := r.IntN(100); {
				case p < 1: // a replay, once the family has tokens
					in.Op, in.Token = Redeem, f.code
				case p < 40:
					in.Op, in.Token = Refresh, f.pick(r, true)
				case p < 52:
					in.Op, in.Token = Revoke, f.pick(r, r.IntN(5) == 0)
				default:
					in.Op, in.Token = Introspect, f.pick(r, false)
				}
				if in.Token == "" { // no tokens yet: one client redeems
					if !f.claimed.CompareAndSwap(false, true) {
						runtime.Gosched()
						continue
					}
					in.Op, in.Token = Redeem, f.code
				}
				// A third of the writes go out as a burst of two to four
				// identical requests at once (a client that double-submits,
				// two replicas of one plugin backend): the races the store
				// must decide one way.
				burst := 1
				if in.Op != Introspect && r.IntN(3) == 0 {
					burst = 2 + r.IntN(3)
				}
				if burst = f.acquire(burst); burst == 0 {
					if in.Op == Redeem && in.Token == f.code && len(f.snapshot()) == 0 {
						f.claimed.Store(false) // let another client make the first redemption
					}
					runtime.Gosched()
					continue
				}
				var bwg sync.WaitGroup
				var refused atomic.Bool
				for j := range burst {
					url := target.URLs[r.IntN(len(target.URLs))]
					bwg.Go(func() {
						if !record(id*4+j, url, f, in) {
							refused.Store(true)
						}
					})
				}
				bwg.Wait()
				f.inflight.Add(-int32(burst))
				if refused.Load() {
					time.Sleep(20 * time.Millisecond) // the server is restarting
				}
			}
		})
	}
	wg.Wait()
	return h, nil
}

// Command plugintoken-bench measures the real plugintoken binary on loopback,
// in one run, so that its figures can be compared with each other:
//
//  1. GET /healthz, the baseline: what the HTTP stack and this load
//     generator cost on their own;
//  2. the token exchange (POST /api/plugin/{id}/token), each request with a
//     fresh auth code issued before the timed run;
//  3. introspection of a live token (POST /api/token/introspect).
//
// It does so on the bbolt file; then the same on ./plugintoken-bench/floor
// (-floor=false skips it), the least an exchange can cost on this machine:
// the same HTTP stack and request log line and one fsynced bbolt group
// commit per exchange, with nothing else, so that its exchange ratio is the
// ceiling of plugintoken's; then on a local single-node etcd that it embeds
// (-etcd-codes 0 skips that run).
//
// Each runs with -conns concurrent keep-alive connections for -duration,
// after a warm-up. The server runs with its defaults: a fresh bbolt file,
// fsync on. It prints requests/s, p50/p99 latency, errors, each route's
// throughput as a ratio to the baseline, and the server's peak RSS.
//
// Only loopback is used: the server is started here on 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
)

func main() {
	var (
		bin      = flag.String("bin", "", "plugintoken binary (default: build ./cmd/plugintoken)")
		duration = flag.Duration("duration", 10*time.Second, "timed length of each scenario")
		warmup   = flag.Duration("warmup", 2*time.Second, "untimed warm-up before each scenario")
		conns    = flag.Int("conns", 64, "concurrent keep-alive connections")
		codes    = flag.Int("codes", 250000, "auth codes to pre-issue for the exchange (the run stops early if they run out)")
		etcdCode = flag.Int("etcd-codes", 120000, "auth codes to pre-issue for the etcd run (0: no etcd run)")
		extra    = flag.String("server-args", "", "extra arguments for plugintoken serve")
		floor    = flag.Bool("floor", true, "also measure ./plugintoken-bench/floor, the least an exchange can cost here (see its doc)")
		profile  = flag.String("profile", "", "folder to save CPU profiles per scenario: the server's (via --debug-addr) and, as gen-NAME, the load generator's (with the etcd it embeds)")
	)
	flag.Parse()
	log.SetFlags(0)
	if err := run(*bin, *duration, *warmup, *conns, *codes, *etcdCode, *floor, strings.Fields(*extra), *profile); err != nil {
		log.Fatal("plugintoken-bench: ", err)
	}
}

func run(bin string, duration, warmup time.Duration, conns, codes, etcdCodes int, floor bool, extra []string, profileDir string) error {
	dir, err := os.MkdirTemp("", "plugintoken-bench")
	if err != nil {
		return err
	}
	if os.Getenv("BENCH_KEEP") != "" {
		fmt.Println("keeping", dir, "(BENCH_KEEP)")
	} else {
		defer os.RemoveAll(dir)
	}
	if bin == "" {
		bin = filepath.Join(dir, "plugintoken")
		build := exec.Command("go", "build", "-o", bin, "./plugintoken") // run from the cmd module
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	fmt.Printf("plugintoken-bench: %d connections, %s per scenario after %s warm-up, %d CPUs shared by server, load generator (and etcd)\n",
		conns, duration, warmup, runtime.NumCPU())
	began := time.Now()
	defer func() { fmt.Printf("\nplugintoken-bench took %s\n", time.Since(began).Round(time.Second)) }()
	fmt.Println("\n== bbolt (the embedded default)")
	if err := runBackend(bin, filepath.Join(dir, "bbolt"), duration, warmup, conns, codes, extra, profileDir); err != nil {
		return err
	}
	if floor {
		fmt.Println("\n== floor (./plugintoken-bench/floor: the same HTTP stack and log line, one fsynced bbolt group commit per exchange, nothing else)")
		floorBin := filepath.Join(dir, "floor")
		build := exec.Command("go", "build", "-o", floorBin, "./plugintoken-bench/floor")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build floor: %w", err)
		}
		// Neither -server-args nor -profile: the floor has no other flag and
		// no debug listener.
		if err := runBackend(floorBin, filepath.Join(dir, "floor-server"), duration, warmup, conns, codes, nil, ""); err != nil {
			return err
		}
	}
	if etcdCodes <= 0 {
		return nil
	}
	fmt.Println("\n== etcd (one plugintoken on a local single-node etcd, embedded in this load generator)")
	etcd, err := etcdtest.StartIn(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Stop()
	extra = append(append([]string(nil), extra...), "--etcd-endpoints", etcd.Endpoint)
	if profileDir != "" {
		profileDir = filepath.Join(profileDir, "etcd")
	}
	return runBackend(bin, filepath.Join(dir, "etcd-server"), duration, warmup, conns, etcdCodes, extra, profileDir)
}

// runBackend starts a server with extra arguments and measures it.
func runBackend(bin, dir string, duration, warmup time.Duration, conns, codes int, extra []string, profileDir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var debugAddr string
	if profileDir != "" {
		debugAddr = freeAddr()
		extra = append(extra, "--debug-addr", debugAddr)
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return err
		}
	}
	srv, err := startServer(bin, dir, extra)
	if err != nil {
		return err
	}
	defer srv.stop()

	c := newClient(conns)
	c.serverPID = srv.cmd.Process.Pid
	c.profile = func(name string, d time.Duration) {
		if debugAddr == "" {
			return
		}
		file := filepath.Join(profileDir, strings.Fields(name)[1][1:]+".pprof")
		file = strings.NewReplacer("/", "_", "{", "", "}", "").Replace(filepath.Base(file))
		// The load generator's own profile too: on etcd it holds the etcd
		// server, whose CPU is most of what an exchange costs there.
		if f, err := os.Create(filepath.Join(profileDir, "gen-"+file)); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				time.AfterFunc(d, func() { pprof.StopCPUProfile(); f.Close() })
			} else {
				f.Close()
			}
		}
		go func() {
			secs := max(1, int(d.Seconds())-1)
			res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, secs))
			if err != nil {
				log.Print("profile: ", err)
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			_ = os.WriteFile(filepath.Join(profileDir, file), b, 0o644)
		}()
	}
	p, err := c.createPlugin(srv)
	if err != nil {
		return err
	}
	tok, err := c.exchangeOnce(srv, p)
	if err != nil {
		return err
	}

	var results []result
	healthz := func(int) (*http.Request, bool) {
		r, _ := http.NewRequest("GET", srv.url+"/healthz", nil)
		return r, true
	}
	results = append(results, c.load("GET /healthz (baseline)", conns, warmup, duration, healthz))

	fmt.Printf("pre-issuing %d auth codes...\n", codes)
	start := time.Now()
	issued, err := c.issueCodes(srv, p, codes, conns)
	if err != nil {
		return err
	}
	fmt.Printf("issued %d codes in %s (%.0f/s)\n", len(issued), time.Since(start).Round(time.Millisecond), float64(len(issued))/time.Since(start).Seconds())
	var next atomic.Int64
	exchange := func(int) (*http.Request, bool) {
		i := next.Add(1) - 1
		if i >= int64(len(issued)) {
			return nil, false
		}
		body := fmt.Sprintf(`{"baseId":"bseBench","secret":%q,"scopes":["table|read","record|read"],"authCode":%q}`, p.Secret, issued[i])
		r, _ := http.NewRequest("POST", srv.url+"/api/plugin/"+p.ID+"/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r, true
	}
	stopRSS := srv.sampleRSS()
	results = append(results, c.load("POST /api/plugin/{id}/token (exchange)", conns, warmup, duration, exchange))
	rssExchange := stopRSS()

	introspectBody := fmt.Sprintf(`{"token":%q}`, tok)
	introspect := func(int) (*http.Request, bool) {
		r, _ := http.NewRequest("POST", srv.url+"/api/token/introspect", strings.NewReader(introspectBody))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+srv.admin)
		return r, true
	}
	results = append(results, c.load("POST /api/token/introspect", conns, warmup, duration, introspect))
	// The baseline again: this machine is noisy, so each ratio is taken
	// against the mean of a baseline before and one after.
	results = append(results, c.load("GET /healthz (baseline, again)", conns, warmup, duration, healthz))

	fmt.Println()
	fmt.Printf("%-42s %9s %6s %8s %9s %9s %7s %11s\n", "scenario", "requests", "errors", "req/s", "p50", "p99", "ratio", "CPU srv/gen")
	base := (results[0].rps() + results[len(results)-1].rps()) / 2
	for _, r := range results {
		fmt.Printf("%-42s %9d %6d %8.0f %9s %9s %6.2fx %5.2f/%.2f\n", r.name, r.n, r.errors, r.rps(),
			r.pct(50).Round(time.Microsecond), r.pct(99).Round(time.Microsecond), r.rps()/base, r.serverCPU, r.loadCPU)
	}
	fmt.Printf("\nratios are to the mean baseline, %.0f req/s\n", base)
	fmt.Printf("server RSS during the exchange load (sampled every 50 ms): peak %s\n", rssExchange)
	fmt.Printf("server memory at the end: %s\n", srv.peakRSS())
	if size := fileSize(filepath.Join(dir, "plugintoken.db")); size > 0 {
		fmt.Printf("database file after the run: %.1f MiB\n", float64(size)/(1<<20))
	}
	for _, r := range results {
		if r.errors > 0 {
			fmt.Printf("first error of %s: %s\n", r.name, r.firstErr)
		}
	}
	return nil
}

// server is the plugintoken process under test.
type server struct {
	cmd   *exec.Cmd
	url   string
	admin string
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(bin, dir string, extra []string) (*server, error) {
	addr := freeAddr()
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	admin := "bench-admin-" + hex.EncodeToString(b)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if os.Getenv("BENCH_SERVER_LOG") != "" {
		logf, err = os.Create(os.Getenv("BENCH_SERVER_LOG"))
	}
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--addr", addr, "--db", filepath.Join(dir, "plugintoken.db")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PLUGINTOKEN_ADMIN_TOKEN="+admin)
	// BENCH_SERVER_ENV: extra environment for the server alone
	// (GOMAXPROCS=4 GOGC=400, say), to compare runtime settings.
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("BENCH_SERVER_ENV"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, admin: admin}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(s.url + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("server did not become healthy")
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

// sampleRSS samples the server's VmRSS until the returned function is
// called, which reports the largest sample with its anonymous and file
// parts (the file part is bbolt's memory map of the database).
func (s *server) sampleRSS() func() string {
	done := make(chan struct{})
	out := make(chan string, 1)
	go func() {
		var peak int64
		var at map[string]string
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if f := s.status(); f != nil {
				var kb int64
				_, _ = fmt.Sscan(strings.TrimSuffix(f["VmRSS"], " kB"), &kb) // 0 when absent
				if kb > peak {
					peak, at = kb, f
				}
			}
			select {
			case <-done:
				out <- fmt.Sprintf("%.1f MiB (RssAnon %s, RssFile %s)", float64(peak)/1024, at["RssAnon"], at["RssFile"])
				return
			case <-t.C:
			}
		}
	}()
	return func() string { close(done); return <-out }
}

// status reads the server's /proc status fields.
func (s *server) status() map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return nil
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// peakRSS is the server's VmHWM, with its anonymous and file-backed parts
// now.
func (s *server) peakRSS() string {
	f := s.status()
	if f == nil {
		return "unknown"
	}
	return fmt.Sprintf("VmHWM (peak over its life, code pre-issuing included) %s, now RssAnon %s, RssFile %s", f["VmHWM"], f["RssAnon"], f["RssFile"])
}

// client is the load generator's HTTP side.
type client struct {
	http *http.Client
	// profile, when set, starts a CPU profile of the server for a timed phase.
	profile func(name string, d time.Duration)
	// serverPID is the server's process, whose CPU time is measured.
	serverPID int
}

// cpuTime is the user+system CPU time of a process so far, from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	if _, err := fmt.Sscan(f[11], &utime); err != nil {
		return 0
	}
	if _, err := fmt.Sscan(f[12], &stime); err != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

func newClient(conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

type plugin struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

func (c *client) postJSON(url, bearer, body string, out any) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %d %s", url, res.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (c *client) createPlugin(s *server) (plugin, error) {
	var p plugin
	err := c.postJSON(s.url+"/api/plugin", s.admin, `{"name":"bench"}`, &p)
	return p, err
}

func (c *client) issueCode(s *server, p plugin) (string, error) {
	var out struct{ Code string }
	err := c.postJSON(s.url+"/api/plugin/"+p.ID+"/authCode", s.admin, `{"baseId":"bseBench"}`, &out)
	return out.Code, err
}

func (c *client) exchangeOnce(s *server, p plugin) (string, error) {
	code, err := c.issueCode(s, p)
	if err != nil {
		return "", err
	}
	var out struct{ AccessToken string }
	body := fmt.Sprintf(`{"baseId":"bseBench","secret":%q,"scopes":["table|read"],"authCode":%q}`, p.Secret, code)
	err = c.postJSON(s.url+"/api/plugin/"+p.ID+"/token", "", body, &out)
	return out.AccessToken, err
}

// onTerminal is whether stdout is a terminal: progress lines are drawn only
// there, and a log or CI stays quiet.
var onTerminal = func() bool {
	st, err := os.Stdout.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}()

// progress redraws "label: done/total (pct%) elapsed" on the terminal's
// current line every quarter second until the returned stop is called.
func progress(label string, total int64, done func() int64) (stop func()) {
	if !onTerminal {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Print("\r\033[K")
				return
			case <-t.C:
				d := min(done(), total)
				fmt.Printf("\r\033[K  %s: %d/%d (%d%%) %s", label, d, total, d*100/max(total, 1), time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// issueCodes issues n auth codes with conns concurrent requests.
func (c *client) issueCodes(s *server, p plugin, n, conns int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	defer progress("issuing auth codes", int64(n), next.Load)()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range conns {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || firstErr.Load() != nil {
					return
				}
				code, err := c.issueCode(s, p)
				if err != nil {
					firstErr.Store(err)
					return
				}
				out[i] = code
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return out, nil
}

// result is one scenario's measurements.
type result struct {
	name      string
	n, errors int
	elapsed   time.Duration
	latencies []time.Duration
	firstErr  string
	// serverCPU and loadCPU are the CPU time the server and this load
	// generator used during the timed phase, in cores.
	serverCPU, loadCPU float64
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) pct(p int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[(len(r.latencies)-1)*p/100]
}

// load runs makeReq in a closed loop on conns workers: untimed for warmup,
// then timed for duration (or until makeReq says there is no more work).
func (c *client) load(name string, conns int, warmup, duration time.Duration, makeReq func(worker int) (*http.Request, bool)) result {
	fmt.Printf("running %s...\n", name)
	phase := func(d time.Duration, record bool) result {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		per := make([][]time.Duration, conns)
		errs := make([]int, conns)
		var firstErr atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for w := range conns {
			wg.Go(func() {
				lat := make([]time.Duration, 0, 1<<14)
				for ctx.Err() == nil {
					req, ok := makeReq(w)
					if !ok {
						break
					}
					t0 := time.Now()
					res, err := c.http.Do(req)
					if err == nil {
						_, err = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if err == nil && res.StatusCode/100 != 2 {
							err = fmt.Errorf("status %d", res.StatusCode)
						}
					}
					lat = append(lat, time.Since(t0))
					if err != nil {
						errs[w]++
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
				per[w] = lat
			})
		}
		wg.Wait()
		r := result{name: name, elapsed: time.Since(start)}
		if !record {
			return r
		}
		for w := range conns {
			r.latencies = append(r.latencies, per[w]...)
			r.errors += errs[w]
		}
		r.n = len(r.latencies)
		slices.Sort(r.latencies)
		if s, ok := firstErr.Load().(string); ok {
			r.firstErr = s
		}
		return r
	}
	start := time.Now()
	elapsed := func() int64 { return int64(time.Since(start) / time.Second) }
	stop := progress(name+", seconds", int64((warmup+duration)/time.Second), elapsed)
	phase(warmup, false)
	if c.profile != nil {
		c.profile(name, duration)
	}
	srv0, self0 := cpuTime(c.serverPID), cpuTime(os.Getpid())
	r := phase(duration, true)
	stop()
	r.serverCPU = (cpuTime(c.serverPID) - srv0).Seconds() / r.elapsed.Seconds()
	r.loadCPU = (cpuTime(os.Getpid()) - self0).Seconds() / r.elapsed.Seconds()
	return r
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

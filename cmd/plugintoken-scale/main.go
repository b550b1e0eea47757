// Command plugintoken-scale measures how plugintoken's costs grow with the
// number of live token pairs in the store (`make scale`). It is a
// benchmark, not a test: it fills a store through the library's Go API
// (core.Service: issue a code, exchange it) in stages and, at each stage,
// prints the fill rate, the bytes per live pair, the memory, lookup
// latencies on random live tokens, HTTP exchange throughput, the sweep with
// nothing due and with about a tenth of the pairs expired (and the
// exchanges' p99 while it runs), the backup, the disk's own copy speed, and
// the reopen.
//
// A tenth of the pairs each stage adds are issued with a one-hour refresh
// lifetime instead of thirty days: the stage's second sweep runs with a
// clock two hours ahead and deletes them (and their codes' tombstones).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"golang.org/x/sys/unix"

	"github.com/plugintoken/plugintoken/internal/etcdtest"
	"github.com/plugintoken/plugintoken/internal/procstatus"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
	"github.com/plugintoken/plugintoken/store/etcdstore"
)

const adminToken = "scale-Qm7xT2vK9pL4wR8nB3cJ6hF1dZ5sY0gE"

// The base and the subject of every pair: Teable's ids are a three-letter
// prefix and 16 characters (as plugin ids), and what a pair costs on disk
// depends on their length.
const (
	baseID  = "bseKq3T9vXw2LmZ7pRc"
	subject = "usrHn4Ye8Ab6DfJ1sWq"
)

func main() {
	// The heap profile samples one allocation in 64 KiB instead of 512, so
	// that its estimate of bbolt's freelist (freelistHeap) is within a
	// fraction of a MiB.
	runtime.MemProfileRate = 64 << 10
	var (
		stages     = flag.String("stages", "10k,100k,1m,3m,10m", "live pairs at each stage (k, m suffixes)")
		backend    = flag.String("backend", "bbolt", "bbolt or etcd (an embedded etcd with an 8 GiB quota)")
		dir        = flag.String("dir", "", "folder for the database, emptied of a previous run's files at the start (default: a temporary one, removed at the end)")
		workers    = flag.Int("workers", 64, "concurrent fillers")
		load       = flag.Duration("load", 5*time.Second, "length of each HTTP exchange measurement")
		samples    = flag.Int("samples", 20000, "lookups timed per stage")
		scattered  = flag.Bool("scattered", false, "make the expired tenth of each stage one pair in ten throughout it, instead of its first tenth (tokens of one lifetime expire in the order they were issued)")
		tokenCache = flag.Int("token-cache", 1024, "entries of the bbolt store's token cache: small, so that the lookups go past it at every stage (the default, 65,536, holds all of a small stage's tokens)")
		lock       = flag.Bool("lock-in-memory", false, "bbolt: open the file with boltstore.Options.LockInMemory (mlock), so that the kernel cannot give its pages up")
		heapDir    = flag.String("heapprofile", "", "folder to write a heap profile into at the end of each stage (heap-<pairs>.pb.gz), to see what the Go heap holds")
	)
	flag.Parse()
	var targets []int
	for _, s := range strings.Split(*stages, ",") {
		n, err := parseCount(s)
		if err != nil {
			log.Fatal(err)
		}
		targets = append(targets, n)
	}
	if *dir == "" {
		d, err := os.MkdirTemp(".", ".scale-*")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	// Every run fills an empty store: what a previous run left in the
	// folder would be counted as this run's pairs.
	for _, name := range []string{"plugintoken.db", "backup.db", "etcd"} {
		if err := os.RemoveAll(filepath.Join(*dir, name)); err != nil {
			log.Fatal(err)
		}
	}
	r, err := newRun(*backend, *dir, boltstore.Options{TokenCacheSize: *tokenCache, LockInMemory: *lock})
	if err != nil {
		log.Fatal(err)
	}
	r.heapDir = *heapDir
	defer r.close()
	locked := ""
	if *lock && *backend == "bbolt" {
		locked = ", the file locked in memory"
	}
	fmt.Printf("plugintoken-scale on %s%s, %s, GOMAXPROCS %d, %d fillers\n\n", *backend, locked, time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), *workers)
	fmt.Println(header(*backend))
	fmt.Println(strings.Repeat("|---", strings.Count(header(*backend), "|")-1) + "|")
	for _, n := range targets {
		row, err := r.stage(n, *workers, *samples, *load, *scattered)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(row)
	}
	if r.backend == "bbolt" {
		if err := r.closeStore(); err != nil {
			log.Fatal(err)
		}
		if err := printBuckets(r.path, r.live); err != nil {
			log.Fatal(err)
		}
		if err := r.open(); err != nil { // for r.close
			log.Fatal(err)
		}
	}
}

// printBuckets prints what each of the closed file's buckets takes per
// live pair, and how full its leaf pages are.
func printBuckets(path string, pairs int) error {
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	fmt.Printf("\nAt %s live pairs, per bucket:\n\n| bucket | keys | bytes per pair (its pages) | leaf pages used |\n|---|---|---|---|\n", count(pairs))
	return b.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			st := bk.Stats()
			pages := st.BranchAlloc + st.LeafAlloc
			used := 0.0
			if st.LeafAlloc > 0 {
				used = float64(st.LeafInuse) / float64(st.LeafAlloc) * 100
			}
			fmt.Printf("| %s | %d | %.0f | %.0f%% |\n", name, st.KeyN, float64(pages)/float64(max(1, pairs)), used)
			return nil
		})
	})
}

// freelistHeap estimates how much of the Go heap bbolt's freelist holds:
// its maps of free and pending pages, and of the pages it allocated since
// the open (which it keeps until they are freed). It sums what the heap
// profile says was allocated under go.etcd.io/bbolt/internal/freelist and is
// still in use, scaled from the runtime's samples as pprof scales them. With
// the etcd backend it includes etcd's own bbolt.
func freelistHeap() int64 {
	// A profile is as of the collection before the last.
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, false)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	var total float64
	for _, rec := range recs {
		objects, bytes := float64(rec.InUseObjects()), float64(rec.InUseBytes())
		if objects == 0 || !inFreelist(rec.Stack()) {
			continue
		}
		total += bytes / (1 - math.Exp(-bytes/objects/rate))
	}
	return int64(total)
}

func inFreelist(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "go.etcd.io/bbolt/internal/freelist.") {
			return true
		}
		if !more {
			return false
		}
	}
}

// writeHeapProfile writes the heap's profile after two collections (a
// profile is as of the collection before the last).
func writeHeapProfile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func header(backend string) string {
	h := "| live pairs | fill (pairs/s) | bytes/pair | RSS / Go heap (of it bbolt's freelist) | Authenticate p50 / p99 | Introspect p50 / p99 | HTTP exchanges/s | sweep, none due | sweep, expired (µs/record) | exchange p99 without / during sweep |"
	if backend == "bbolt" {
		h += " backup (MB/s) / cp (MB/s) | close / reopen | file in page cache at the lookups | a random page of the file p50 / p99 | major faults in the lookups |"
	} else {
		h += " etcd db size / in use |"
	}
	return h
}

func parseCount(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.ParseFloat(s, 64)
	return int(n * float64(mult)), err
}

// run is the store under measurement and what the stages share.
type run struct {
	backend, dir string
	heapDir      string // where stage writes heap profiles, or ""
	path         string // bbolt
	etcd         *etcdtest.Server
	st           store.Store
	bolt         *boltstore.DB
	etcdDB       *etcdstore.DB
	svc          *core.Service // 30-day refresh tokens
	short        *core.Service // one-hour refresh tokens, for the expired tenth
	loadCodes    *core.Service // three-hour codes, for the HTTP load (they outlive the sweep's clock)
	plugin       core.NewPlugin
	live         int // pairs stored, the short ones included until swept
	// sample is a reservoir of live access tokens, for the lookups.
	mu     sync.Mutex
	sample reservoir
	seen   int
	// boltOpts are the bbolt store's options (a small token cache).
	boltOpts boltstore.Options
}

// reservoirSize is how many tokens the lookups sample from.
const reservoirSize = 100_000

// reservoir holds up to reservoirSize tokens in memory allocated once, at
// the start, so that what the benchmark holds itself is the same at every
// stage and the Go heap it reports is the library's.
type reservoir struct {
	slots []byte // reservoirSize slots of slotSize bytes: a length, then the token
	n     int
}

const slotSize = 128

func newReservoir() reservoir { return reservoir{slots: make([]byte, reservoirSize*slotSize)} }

func (s *reservoir) set(i int, tok string) {
	if len(tok) >= slotSize {
		panic("plugintoken-scale: a token longer than a reservoir slot")
	}
	slot := s.slots[i*slotSize : (i+1)*slotSize]
	slot[0] = byte(len(tok))
	copy(slot[1:], tok)
}

func (s *reservoir) get(i int) string {
	slot := s.slots[i*slotSize : (i+1)*slotSize]
	return string(slot[1 : 1+int(slot[0])])
}

func newRun(backend, dir string, boltOpts boltstore.Options) (*run, error) {
	r := &run{backend: backend, dir: dir, boltOpts: boltOpts, sample: newReservoir()}
	switch backend {
	case "bbolt":
		r.path = filepath.Join(dir, "plugintoken.db")
	case "etcd":
		s, err := etcdtest.StartInWith(filepath.Join(dir, "etcd"), func(c *embed.Config) { c.QuotaBackendBytes = 8 << 30 })
		if err != nil {
			return nil, err
		}
		r.etcd = s
	default:
		return nil, fmt.Errorf("-backend %q: bbolt or etcd", backend)
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	p, err := r.svc.CreatePlugin(context.Background(), "Scale", []string{"table|read", "record|read"})
	if err != nil {
		return nil, err
	}
	r.plugin = p
	return r, nil
}

func (r *run) open() error {
	var err error
	if r.backend == "bbolt" {
		r.bolt, err = boltstore.Open(r.path, r.boltOpts)
		r.st = r.bolt
	} else {
		r.etcdDB, err = etcdstore.Open(etcdstore.Options{Endpoints: []string{r.etcd.Endpoint}, RequestTimeout: time.Minute, CompactInterval: -1})
		r.st = r.etcdDB
	}
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)
	// Access tokens live as long as refresh tokens here: the lookups sample
	// tokens issued in earlier stages, tens of minutes before.
	r.svc, err = core.New(core.Config{Store: r.st, Logger: quiet, MaxFailures: -1, AuthCodeTTL: time.Hour,
		AccessTokenTTL: core.DefaultRefreshTokenTTL})
	if err != nil {
		return err
	}
	r.short, err = core.New(core.Config{Store: r.st, Logger: quiet, MaxFailures: -1, AuthCodeTTL: time.Hour,
		AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour})
	if err != nil {
		return err
	}
	r.loadCodes, err = core.New(core.Config{Store: r.st, Logger: quiet, MaxFailures: -1, AuthCodeTTL: 3 * time.Hour})
	return err
}

func (r *run) closeStore() error {
	if r.bolt != nil {
		return r.bolt.Close()
	}
	return r.etcdDB.Close()
}

func (r *run) close() {
	_ = r.closeStore()
	if r.etcd != nil {
		r.etcd.Stop()
	}
}

// keep offers a token to the reservoir of 100,000.
func (r *run) keep(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen++
	if r.sample.n < reservoirSize {
		r.sample.set(r.sample.n, token)
		r.sample.n++
	} else if i := rand.IntN(r.seen); i < reservoirSize {
		r.sample.set(i, token)
	}
}

// fill adds long-lived pairs until n are stored, and a ninth as many
// short-lived ones (a tenth of what the stage adds). With scattered false
// the short-lived ones are the stage's first tenth, as tokens expire in a
// deployment where every token has the same lifetime: in the order they
// were issued, so in key order. With scattered true they are one in ten
// throughout the stage: each of them, once expired, leaves a hole in a
// page that no later key fills.
func (r *run) fill(n, workers int, scattered bool) (time.Duration, error) {
	want := n - r.live
	if want <= 0 {
		return 0, nil
	}
	total := want + want/9
	isShort := func(i int64) bool { return i <= int64(want/9) }
	if scattered {
		isShort = func(i int64) bool { return i%10 == 0 }
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	ctx := context.Background()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(total) || firstErr.Load() != nil {
					return
				}
				svc := r.svc
				if isShort(i) {
					svc = r.short
				}
				code, err := svc.IssueAuthCode(ctx, r.plugin.ID, baseID, subject)
				if err == nil {
					var pair core.TokenPair
					pair, err = svc.Exchange(ctx, r.plugin.ID, core.TokenRequest{BaseID: baseID, Secret: r.plugin.Secret, AuthCode: code.Code, Scopes: []string{"table|read"}})
					if err == nil && svc == r.svc {
						r.keep(pair.AccessToken)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, fmt.Errorf("fill: %w", err)
	}
	r.live += total
	return time.Since(start), nil
}

func (r *run) stage(n, workers, samples int, loadFor time.Duration, scattered bool) (string, error) {
	before := r.live
	took, err := r.fill(n, workers, scattered)
	if err != nil {
		return "", err
	}
	fillRate := "—" // the stage held its target already (the HTTP load's pairs)
	if took > 0 {
		fillRate = fmt.Sprintf("%.0f", float64(r.live-before)/took.Seconds())
	}
	ctx := context.Background()

	// The sweep with nothing due, twice (the first may meet the index's
	// pages cold); the second is reported.
	var none time.Duration
	for range 2 {
		t := time.Now()
		if _, err := r.st.Sweep(ctx, time.Now()); err != nil {
			return "", err
		}
		none = time.Since(t)
	}

	cached, probe := "—", "—"
	if r.backend == "bbolt" {
		cached = pageCacheShare(r.path)
		probe = pageProbe(r.path, samples)
	}
	faults := majorFaults()
	auth := r.time(samples, func(tok string) error { _, err := r.svc.Authenticate(ctx, tok); return err })
	intro := r.time(samples, func(tok string) error { _, err := r.svc.Introspect(ctx, tok); return err })
	faults = majorFaults() - faults

	// HTTP exchanges, then again while the expired tenth is swept.
	h, err := r.newHTTP()
	if err != nil {
		return "", err
	}
	base := h.exchange(loadFor, nil)
	var swept store.SweepResult
	var sweepTook time.Duration
	during := h.exchange(loadFor, func() error {
		t := time.Now()
		var err error
		swept, err = r.st.Sweep(ctx, time.Now().Add(2*time.Hour))
		sweepTook = time.Since(t)
		return err
	})
	h.close()
	if during.err != nil {
		return "", during.err
	}
	// The load's unused codes (three hours) go, unmeasured: they are not
	// pairs, and would count in the bytes of the next stages.
	if _, err := r.st.Sweep(ctx, time.Now().Add(4*time.Hour)); err != nil {
		return "", err
	}
	r.live -= swept.Grants
	r.live += base.n + during.n
	perRecord := "—" // nothing expired: the stage added no pairs
	if n := swept.Codes + swept.Grants; n > 0 {
		perRecord = fmt.Sprintf("%.1f", float64(sweepTook.Microseconds())/float64(n))
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if r.heapDir != "" { // what the heap holds when it is measured
		if err := writeHeapProfile(filepath.Join(r.heapDir, fmt.Sprintf("heap-%d.pb.gz", r.live))); err != nil {
			return "", err
		}
	}
	row := fmt.Sprintf("| %s | %s | %s | %s / %s (%s) | %s | %s | %.0f | %s | %s for %d (%s) | %s / %s |",
		count(r.live), fillRate, r.bytesPerPair(), mib(rss()), mib1(int64(ms.HeapAlloc)), mib1(freelistHeap()),
		auth, intro, base.rate(), ms1(none), ms1(sweepTook), swept.Codes+swept.Grants, perRecord,
		ms1(base.p99()), ms1(during.p99()))
	if r.backend == "bbolt" {
		b, c, closing, reopen, err := r.backupAndReopen()
		if err != nil {
			return "", err
		}
		row += fmt.Sprintf(" %.0f / %.0f | %s / %s | %s | %s | %d |", b, c, ms1(closing), ms1(reopen), cached, probe, faults)
	} else {
		size, inUse, err := r.etcdSize()
		if err != nil {
			return "", err
		}
		row += fmt.Sprintf(" %s / %s |", mib(size), mib(inUse))
	}
	return row, nil
}

// time times f on random sampled tokens, one at a time, and returns
// "p50 / p99".
func (r *run) time(n int, f func(string) error) string {
	d := make([]time.Duration, 0, n)
	// What the step before (the fill) left is collected before the clock
	// starts, not during the lookups. (It did not explain the slow first
	// set at 10M: that is this machine's host, see pageProbe.) The
	// lookups' own garbage is collected while they run, and counts.
	runtime.GC()
	for range n {
		r.mu.Lock()
		tok := r.sample.get(rand.IntN(r.sample.n))
		r.mu.Unlock()
		t := time.Now()
		if err := f(tok); err != nil {
			return "error: " + err.Error()
		}
		d = append(d, time.Since(t))
	}
	slices.Sort(d)
	return fmt.Sprintf("%s / %s", us(d[len(d)/2]), us(d[len(d)*99/100]))
}

func (r *run) bytesPerPair() string {
	if r.backend == "bbolt" {
		st, err := os.Stat(r.path)
		if err != nil {
			return "?"
		}
		return strconv.FormatInt(st.Size()/int64(max(1, r.live)), 10)
	}
	_, inUse, err := r.etcdSize()
	if err != nil {
		return "?"
	}
	return strconv.FormatInt(inUse/int64(max(1, r.live)), 10)
}

// etcdSize compacts etcd's history and defragments it, so that what is in
// use is the live data, and returns the database's size and what is used.
func (r *run) etcdSize() (size, inUse int64, err error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{r.etcd.Endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	resp, err := c.Get(ctx, "/")
	if err != nil {
		return 0, 0, err
	}
	if _, err := c.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !strings.Contains(err.Error(), "compacted") {
		return 0, 0, err
	}
	if _, err := c.Defragment(ctx, r.etcd.Endpoint); err != nil {
		return 0, 0, err
	}
	st, err := c.Status(ctx, r.etcd.Endpoint)
	if err != nil {
		return 0, 0, err
	}
	return st.DbSize, st.DbSizeInUse, nil
}

// backupAndReopen times a backup to a file beside the database, the
// disk's copy of the same file with cp, and a close and reopen.
func (r *run) backupAndReopen() (backupMBs, cpMBs float64, closing, reopen time.Duration, err error) {
	out := filepath.Join(r.dir, "backup.db")
	// Each is timed twice, alternating with the other, and the faster time
	// is reported: whichever runs first pays for the writeback of what the
	// stage wrote before it.
	for range 2 {
		took, size, err := r.timeCopy(out, func(f *os.File) error {
			return exec.Command("sh", "-c", `cp "$0" "$1" && sync "$1"`, r.path, out).Run()
		})
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("cp: %w", err)
		}
		cpMBs = max(cpMBs, float64(size)/(1<<20)/took.Seconds())
		took, size, err = r.timeCopy(out, func(f *os.File) error {
			if err := r.bolt.Backup(context.Background(), f, nil); err != nil {
				return err
			}
			return f.Sync()
		})
		if err != nil {
			return 0, 0, 0, 0, err
		}
		backupMBs = max(backupMBs, float64(size)/(1<<20)/took.Seconds())
	}
	t := time.Now()
	if err := r.closeStore(); err != nil {
		return 0, 0, 0, 0, err
	}
	closing = time.Since(t)
	t = time.Now()
	err = r.open()
	return backupMBs, cpMBs, closing, time.Since(t), err
}

// timeCopy times write, which writes the file out (created empty for it),
// and returns how long it took and the size it wrote; the file is removed.
func (r *run) timeCopy(out string, write func(*os.File) error) (time.Duration, int64, error) {
	f, err := os.Create(out)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = os.Remove(out) }()
	t := time.Now()
	err = write(f)
	took := time.Since(t)
	_ = f.Close()
	if err != nil {
		return 0, 0, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return 0, 0, err
	}
	return took, st.Size(), nil
}

// httpRun is the HTTP API over the store, on loopback, with codes issued
// in-process for its exchanges.
type httpRun struct {
	r      *run
	srv    *http.Server
	url    string
	client *http.Client
}

func (r *run) newHTTP() (*httpRun, error) {
	admin, err := server.StaticTokens(adminToken)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{Config: core.Config{Store: r.st, Logger: slog.New(slog.DiscardHandler), MaxFailures: -1}, Admin: admin})
	if err != nil {
		return nil, err
	}
	e, err := srv.Handler()
	if err != nil {
		return nil, err
	}
	e.Logger.SetOutput(io.Discard)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &httpRun{r: r, srv: &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}, url: "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

func (h *httpRun) close() { _ = h.srv.Close() }

type loadResult struct {
	n       int
	elapsed time.Duration
	lat     []time.Duration
	err     error
}

func (l loadResult) rate() float64 { return float64(l.n) / l.elapsed.Seconds() }
func (l loadResult) p99() time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	slices.Sort(l.lat)
	return l.lat[len(l.lat)*99/100]
}

// exchange runs 64 connections of exchanges for d (or, with during, for
// as long as during takes and at least d) and returns what they did.
func (h *httpRun) exchange(d time.Duration, during func() error) loadResult {
	ctx := context.Background()
	// Codes for the load, issued beforehand in-process.
	codes := make(chan string, 60_000)
	var issue sync.WaitGroup
	var issueErr atomic.Value
	for range 64 {
		issue.Go(func() {
			for len(codes) < cap(codes)-64 {
				c, err := h.r.loadCodes.IssueAuthCode(ctx, h.r.plugin.ID, baseID, subject)
				if err != nil {
					issueErr.CompareAndSwap(nil, err)
					return
				}
				codes <- c.Code
			}
		})
	}
	issue.Wait()
	close(codes)
	if err, _ := issueErr.Load().(error); err != nil {
		return loadResult{err: err}
	}
	var mu sync.Mutex
	var res loadResult
	stop := make(chan struct{})
	var wg sync.WaitGroup
	url := h.url + "/api/plugin/" + h.r.plugin.ID + "/token"
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			var lat []time.Duration
			for code := range codes {
				select {
				case <-stop:
					mu.Lock()
					res.lat = append(res.lat, lat...)
					mu.Unlock()
					return
				default:
				}
				body, _ := json.Marshal(map[string]any{"baseId": baseID, "secret": h.r.plugin.Secret, "authCode": code, "scopes": []string{"table|read"}})
				t := time.Now()
				resp, err := h.client.Post(url, "application/json", bytes.NewReader(body))
				if err == nil {
					answer, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("exchange: %s %s", resp.Status, answer)
					}
				}
				if err != nil {
					mu.Lock()
					res.err = err
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	var duringErr error
	if during != nil {
		duringErr = during()
	}
	if rest := d - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	if duringErr != nil {
		res.err = duringErr
	}
	return res
}

// rss is this process's resident memory (0 when /proc cannot say).
func rss() int64 {
	n, _ := procstatus.Bytes(0, "VmRSS")
	return n
}

func count(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return strconv.Itoa(n)
}

func mib(b int64) string  { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
func mib1(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func ms1(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1000) }

// pageProbe reads one byte of each of n random pages of the file at path,
// through a mapping of its own, and returns the p50 and p99 of a read: the
// floor under a lookup, which reads at least one page that nothing read
// recently, without any of the lookup's own work. It runs just before the
// lookups, so it finds the file as they do. Each read pays a minor fault
// (the mapping is new), a microsecond at most; a page the page cache does
// not hold is read from the disk (major fault). When the file is locked in
// memory and the reads still have a slow tail, the tail is below this
// machine's kernel: memory the host hands the VM back lazily after it was
// left untouched (docs/benchmarks.md).
func pageProbe(path string, n int) string {
	data, unmap, err := mapFile(path)
	if err != nil {
		return "?"
	}
	defer unmap()
	// As bbolt's own mapping: no readahead around a fault.
	if err := unix.Madvise(data, unix.MADV_RANDOM); err != nil {
		return "?"
	}
	page := os.Getpagesize()
	pages := len(data) / page
	d := make([]time.Duration, n)
	var sum byte
	for i := range d {
		off := rand.IntN(pages)*page + rand.IntN(page)
		t := time.Now()
		sum += data[off]
		d[i] = time.Since(t)
	}
	runtime.KeepAlive(sum) // the reads are not optimised away
	slices.Sort(d)
	return fmt.Sprintf("%s / %s", us(d[len(d)/2]), us(d[len(d)*99/100]))
}

// mapFile maps the file at path read-only, shared with the page cache (as
// bbolt maps it). The mapping outlives the file's descriptor.
func mapFile(path string) (data []byte, unmap func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, nil, fmt.Errorf("%s is empty", path)
	}
	data, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { _ = unix.Munmap(data) }, nil
}

// majorFaults is the number of page faults this process has taken that read
// the disk.
func majorFaults() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Majflt
}

// pageCacheShare is the share of the file at path that the page cache
// holds (mincore): a lookup that needs a page it does not hold reads the
// disk.
func pageCacheShare(path string) string {
	data, unmap, err := mapFile(path)
	if err != nil {
		return "?"
	}
	defer unmap()
	page := os.Getpagesize()
	vec := make([]byte, (len(data)+page-1)/page)
	// x/sys has no wrapper for mincore(2).
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return "?"
	}
	var in int
	for _, v := range vec {
		in += int(v & 1)
	}
	return fmt.Sprintf("%.0f%%", 100*float64(in)/float64(len(vec)))
}

package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/plugintoken/plugintoken/store"
	bolt "go.etcd.io/bbolt"
)

// What is checked, and when (docs/operations.md, "A damaged file"):
//
//   - At every open: bbolt's own checks of the meta pages, the file's size
//     against what its pages need, and every element of the small buckets
//     (meta, plugins) and the first and last of the large ones (codes,
//     grants, expiry): every page on the paths from their roots to both
//     ends. That is what the damaged-file tests (internal/damage) damage.
//   - After an unclean stop (a crash, SIGKILL, power loss: bbolt's freelist
//     was not written, which Close does), every element of every bucket,
//     before bbolt rebuilds its freelist by walking every page in a
//     goroutine of its own, where a bad page would kill the process.
//   - After a clean close, that whole walk moves to the background, once
//     Open has returned (reopening a store of ten million pairs takes
//     milliseconds instead of seconds). Until it ends, a transaction that
//     meets a damaged page fails with ErrDamaged, as do reads after it; it
//     never takes the process down. When it finds damage, Ping (readiness)
//     reports it from then on.
//   - DB.Check (`plugintoken backup` runs it on every copy) is bbolt's own
//     full consistency check.

// freelistSynced reports whether the file at path was last closed by
// Close: its newest valid meta page names a freelist page (a commit with
// NoFreelistSync names none, and only Close writes one). A file that
// cannot tell (too short, no valid meta page) is not: it gets the whole
// check, which says what is wrong.
func freelistSynced(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	const (
		pageHeader = 16
		metaLen    = 64 // magic, version, page size, flags, root (16), freelist, pgid, txid, checksum
		magic      = 0xED0CDAED
		noFreelist = 0xffffffffffffffff
	)
	read := func(off int64) (m []byte, ok bool) {
		m = make([]byte, metaLen)
		if _, err := f.ReadAt(m, off+pageHeader); err != nil && !errors.Is(err, io.EOF) {
			return nil, false
		}
		h := fnv.New64a()
		_, _ = h.Write(m[:56])
		le := binary.LittleEndian
		return m, le.Uint32(m[0:]) == magic && h.Sum64() == le.Uint64(m[56:])
	}
	m0, ok0 := read(0)
	pageSize := int64(os.Getpagesize())
	if ok0 {
		pageSize = int64(binary.LittleEndian.Uint32(m0[8:]))
	}
	m1, ok1 := read(pageSize)
	var m []byte
	switch {
	case ok0 && ok1:
		m = m0
		if binary.LittleEndian.Uint64(m1[48:]) > binary.LittleEndian.Uint64(m0[48:]) { // txid
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return false
	}
	return binary.LittleEndian.Uint64(m[32:]) != noFreelist
}

// bigBuckets are the buckets that grow with the live tokens: the open-time
// check of a cleanly closed file reads only their ends.
var bigBuckets = map[string]bool{string(bucketCodes): true, string(bucketGrants): true, string(bucketExpiry): true}

// ends reads the first and last element of bucket b: the pages from its
// root to both ends.
func (w *walker) ends(b *bolt.Bucket) {
	c := b.Cursor()
	inline := b.Root() == 0
	for _, kv := range [][2][]byte{pair(c.First()), pair(c.Last())} {
		w.touch(kv[0], inline)
		w.touch(kv[1], inline)
	}
}

func pair(k, v []byte) [2][]byte { return [2][]byte{k, v} }

// backgroundCheck is the walk of every element that Open left to a
// goroutine after a clean close.
type backgroundCheck struct {
	stop atomic.Bool
	done chan struct{}
}

// errCheckStopped ends a background walk that Close interrupted.
var errCheckStopped = errors.New("store: check stopped")

// startCheck walks every element of every bucket in a read transaction of
// a goroutine of its own, and records damage it finds in db.damaged.
func (db *DB) startCheck() {
	bc := &backgroundCheck{done: make(chan struct{})}
	db.check = bc
	go func() {
		defer close(bc.done)
		if err := db.walkAll(&bc.stop); err != nil && !errors.Is(err, errCheckStopped) {
			db.damaged.CompareAndSwap(nil, &err)
		}
	}()
}

// walkAll reads every element of every bucket of the file (of plugintoken's
// root bucket, under OpenDB) and returns ErrDamaged for a page that
// faults or does not decode as bbolt expects.
func (db *DB) walkAll(stop *atomic.Bool) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if p == errCheckStopped { // the sentinel itself is what walk panics with
				err = errCheckStopped
				return
			}
			err = damage(db.path, p)
		}
	}()
	return db.bolt.View(func(tx *bolt.Tx) error {
		return newWalker(tx, stop).file(tx, true)
	})
}

// recoverDamage turns a panic of a transaction (a page that faults, or that
// bbolt finds malformed) into ErrDamaged, which Ping reports from then on.
// It must be deferred directly, after debug.SetPanicOnFault(true).
func (db *DB) recoverDamage(err *error) {
	if p := recover(); p != nil {
		// Unavailable as well: the request may be retried elsewhere, and
		// is answered 503, not 500.
		e := fmt.Errorf("%w: %w", store.ErrUnavailable, damage(db.path, p))
		db.damaged.CompareAndSwap(nil, &e)
		*err = e
	}
}

// ErrDamaged is returned (wrapped) by Open for a file that is not a whole,
// readable plugintoken database: truncated, or with pages that do not
// decode. Restore it from a backup.
var ErrDamaged = errors.New("store: database file is damaged")

// damage is the error of a check or transaction that panicked with p (a
// page that faults, or that bbolt finds malformed) on the file at path.
func damage(path string, p any) error {
	return fmt.Errorf("%w: %s: %v (restore it from a backup)", ErrDamaged, path, p)
}

// verify reads the pages a lookup can reach, in a read-only open of the
// file at path, and reports a damaged file as ErrDamaged: every page when
// full, else (a file Close closed) every page of the small buckets and
// the paths to both ends of the large ones (check.go). A read-write open
// of a file whose freelist was not written rebuilds it by walking every
// page in a goroutine of bbolt's own, whose assertions panic on a bad page
// where no recover can catch them: the process would die with a stack
// trace. Here the same pages are read first by cursors in this goroutine,
// with memory faults turned into panics, and any panic is an error. A file
// that does not exist yet, or is empty, has nothing to verify.
func verify(path string, timeout time.Duration, full bool) (err error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return openError(path, timeout, err)
	}
	defer func() { _ = b.Close() }() // read only: nothing to lose
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = damage(path, p)
		}
	}()
	return b.View(func(tx *bolt.Tx) error {
		if need := tx.Size(); st.Size() < need {
			return fmt.Errorf("%w: %s is truncated: %d bytes, its pages need %d (restore it from a backup)", ErrDamaged, path, st.Size(), need)
		}
		return newWalker(tx, nil).file(tx, full)
	})
}

// walker reads every element of a bucket and of the buckets nested in
// it, as the consistency check of a read-write open will: every key and
// value must lie inside the file's pages (an element whose position or
// size points elsewhere is damage, which a read may not fault on: the
// address past the file can belong to another mapping), and its first and
// last byte are read (a slice is contiguous, so if both ends are mapped
// the whole of it is); every nested bucket's pages are walked. Damage
// panics, which the caller recovers. When stop is not nil and becomes
// true, walk panics with errCheckStopped.
type walker struct {
	lo, hi uintptr // the mapped bytes of the transaction's pages
	stop   *atomic.Bool
	sink   byte
}

// file walks every bucket of tx: every element when full, else every
// element of the small buckets and both ends of the large ones.
func (w *walker) file(tx *bolt.Tx, full bool) error {
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if !full && bigBuckets[string(name)] {
			w.ends(b)
		} else {
			w.walk(b, 0)
		}
		return nil
	})
}

// newWalker returns a walker for the pages of tx.
func newWalker(tx *bolt.Tx, stop *atomic.Bool) *walker {
	lo := tx.DB().Info().Data
	return &walker{lo: lo, hi: lo + uintptr(tx.Size()), stop: stop}
}

// touch reads p, an element of a bucket that has pages of its own (inline
// is false) or of an inline bucket, whose bytes bbolt may have copied to
// the heap (then only a fault tells).
func (w *walker) touch(p []byte, inline bool) {
	if len(p) == 0 {
		return
	}
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if !inline && (at < w.lo || at+uintptr(len(p)) > w.hi) {
		panic(fmt.Sprintf("an element of %d bytes lies outside the file's pages", len(p)))
	}
	w.sink ^= p[0] ^ p[len(p)-1]
}

func (w *walker) walk(b *bolt.Bucket, depth int) {
	if depth > 16 {
		panic("buckets nested deeper than any plugintoken file has")
	}
	c := b.Cursor()
	inline := b.Root() == 0
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; w.stop != nil && n%4096 == 0 && w.stop.Load() {
			panic(errCheckStopped)
		}
		w.touch(k, inline)
		if v != nil {
			w.touch(v, inline)
			continue
		}
		if nested := b.Bucket(k); nested != nil {
			w.walk(nested, depth+1)
		}
	}
}

// openBolt is bolt.Open, with the panic of a consistency check that found
// what verify did not (an invariant between pages, reported on this
// goroutine) turned into ErrDamaged.
func openBolt(path string, opts *bolt.Options) (b *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damage(path, p)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

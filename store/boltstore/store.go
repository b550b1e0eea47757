// Package boltstore keeps plugintoken's plugins, auth codes and tokens in a
// bbolt file, or in buckets of a bbolt database a host already has open
// (OpenDB). It keeps the contract of package store (store.Store).
//
// Records are stored in the compact binary form every backend shares (one
// codec, internal to package store); reads of live tokens are served from a
// cache that writes drop inside their transaction, so no read ever sees a
// token that a committed write ended.
//
// Layout of the file, schema version 6:
//
//	meta/
//	    schema        -> "6"
//	    probe         -> 64 KiB written by Ping after a failed write
//	    purge         -> set by a plugin's deletion until a sweep has deleted
//	                     its codes and tokens
//	plugins/
//	    <plugin id>   -> Plugin (SecretHash, never the secret)
//	codes/
//	    <code key>    -> AuthCode, until it is redeemed or expires
//	    <family>0…0   -> the tombstone of a revoked family's code
//	grants/
//	    <grant key>   -> Grant: an access and a refresh token issued together
//	                     (their secret hashes, their code's, plugin, base,
//	                     scopes, times)
//	expiry/
//	    <deadline><c|g><key> -> (empty): the record's entry in the expiry
//	                     index, written with it, so that a sweep reads only
//	                     what is due (store/internal/codec, expiry.go)
//
// Version 3 had no expiry index: Open migrates such a file in place
// (migrate). Versions 4 and 5 are only marked 6: their records decode as
// they are.
//
// A code key sorts by issue time (store.NewKey), so the records a group commit
// writes sit together on a few pages. A grant key starts with the 16 bytes
// of its code's key (its Family, store.NewGrantKey), and so does every grant
// rotated from it: the tokens descended from one code are one contiguous
// range of grants/.
//
// A redemption deletes its code (and the code's entry): every grant of the
// family carries the code's hash instead, so that a second redemption, which
// finds no code, is recognised as a replay from the family's first grant and
// revokes what the code gave, not mistaken for an unknown code. A
// revocation of the family leaves a tombstone under the family's key, kept
// until the revoked grant's deadline, so that later replays are still
// replays. A version 5 file's redeemed codes are still stored under their
// own keys, as tombstones, and still recognised. A rotated grant is kept
// until its refresh token's expiry so that the token's reuse is recognised.
// A replay or a reuse revokes the whole family: its range of grants/ is
// deleted.
//
// Deleting a plugin removes only its record (and sets meta/purge): codes
// and tokens that name a plugin that no longer exists are treated as
// unknown by every read, and the next Sweep removes them for good. This
// keeps deletion one small write however many tokens a plugin has.
package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plugintoken/plugintoken/store/internal/codec"

	"github.com/plugintoken/plugintoken/store"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta    = []byte("meta")
	bucketPlugins = []byte("plugins")
	bucketCodes   = []byte("codes")
	bucketGrants  = []byte("grants")
	bucketExpiry  = []byte("expiry")

	keySchema = []byte("schema")
	keyProbe  = []byte("probe")
	keyPurge  = []byte("purge")
)

// Options tune Open.
type Options struct {
	// LockTimeout bounds how long Open waits for the file lock held by
	// another process before it fails. Zero means 2 seconds.
	LockTimeout time.Duration
	// MaxBatchSize caps how many writes (redemptions, rotations,
	// revocations, new codes) share one transaction and one fsync. Zero
	// means DefaultMaxBatchSize.
	MaxBatchSize int
	// MaxBatchDelay, when positive, makes the group commit wait that long
	// before each transaction to gather more writes. The default, zero,
	// commits as soon as the previous commit is done, which measured best
	// (see docs/benchmarks.md).
	MaxBatchDelay time.Duration
	// Bucket is the top-level bucket OpenDB keeps plugintoken's buckets
	// under, in the host's database. Zero means "plugintoken". Open ignores
	// it: a file of plugintoken's own has its buckets at the top.
	Bucket string
	// TokenCacheSize bounds how many tokens are kept decoded in memory for
	// repeated lookups, and as many unknown keys. Zero means
	// DefaultTokenCacheSize; negative turns the cache off. A token is
	// forgotten TokenCacheSize/2 to TokenCacheSize additions after it was
	// added (two generations; the older is forgotten at once), however
	// often it is read: a token in use is then read from the file once.
	TokenCacheSize int
	// LockInMemory makes Open lock the whole file in memory (mlock(2),
	// bbolt's Options.Mlock, as etcd's --memory-mlock does for its own
	// bbolt file), so that a lookup or a sweep never waits for the disk
	// however the kernel treats its page cache: with millions of live
	// pairs, a lookup that meets a page the kernel gave up reads it from
	// disk, which is its p99 (docs/benchmarks.md). The cost: the process
	// holds the file's size in memory for good (bbolt's memory map, in its
	// RSS); Open reads the whole file first (0.3 to 2.5 s for a 2.4 GiB
	// file in the page cache, in docs/benchmarks.md's runs; a disk's read
	// time when it is not); and the process must be allowed to lock
	// that much (CAP_IPC_LOCK, or RLIMIT_MEMLOCK above the file's size:
	// LimitMEMLOCK= in a systemd unit), or Open fails saying so. Leave the
	// limit room for growth: a write that grows the file past it fails,
	// and bbolt then has the file unmapped, so every later write fails
	// (ErrUnavailable, and Ping) until the store is opened again. Unix
	// only. OpenDB refuses it: the host sets bbolt's Mlock on its own
	// database.
	LockInMemory bool
}

// DefaultTokenCacheSize keeps the hot set of a large gateway in memory
// (about 300 bytes a token).
const DefaultTokenCacheSize = 65536

// DefaultMaxBatchSize bounds a group commit's transaction. Under a load of
// 64 concurrent clients a batch holds what arrived during the previous
// commit, far fewer than this.
const DefaultMaxBatchSize = 256

// DB is a plugintoken store in one bbolt file. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	// root is the top-level bucket plugintoken's buckets live under (OpenDB),
	// nil when they are at the top of a file of their own (Open).
	root []byte
	// owned: Close closes bolt (Open), or leaves it to the host (OpenDB).
	owned bool
	// writeMu makes each write transaction and the cache's settle after it
	// one step (bbolt runs one write transaction at a time anyway), so the
	// token cache can tell which transaction a drop belongs to.
	writeMu sync.Mutex
	// writeErr is the error of the last write transaction when it failed
	// to commit, nil once one succeeds.
	writeErr atomic.Pointer[error]
	path     string
	commit   *committer
	cache    *tokenCache
	plugins  *pluginCache
	// damaged is the first damage a transaction or the background check
	// met (check.go); Ping reports it.
	damaged atomic.Pointer[error]
	// check is the background walk Open started after a clean close, or
	// nil.
	check *backgroundCheck
	// sweepBudget is sweepBudget (sweep.go); tests that count a sweep's
	// transactions lift it.
	sweepBudget time.Duration
}

// ErrLocked is returned (wrapped) by Open when another process holds the file.
var ErrLocked = errors.New("store: database file is locked by another process")

// Open opens (creating if needed) the store at path. The file and its folder
// are created readable by the owner only. Writes are fsynced before a method
// returns, so a nil error means the change is on disk.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.LockInMemory && runtime.GOOS == "windows" {
		return nil, errors.New("store: LockInMemory needs a Unix system (mlock)")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("store: %s is a folder, not a database file: name the file in it (for example %s)", path, filepath.Join(path, "plugintoken.db"))
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create folder for %s: %w", path, err)
		}
	}
	// A file Close closed has its freelist written, so bbolt reads it
	// instead of walking every page: the walk of every element can wait
	// for the background (check.go).
	clean := freelistSynced(path)
	if err := verify(path, opts.LockTimeout, !clean); err != nil {
		return nil, err
	}
	b, err := openBolt(path, &bolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt from the pages at open instead of being
		// written on every commit: fewer pages per fsync. Data pages are
		// fsynced as always.
		NoFreelistSync: true,
		Mlock:          opts.LockInMemory,
	})
	if err != nil {
		if opts.LockInMemory {
			var size int64
			if st, serr := os.Stat(path); serr == nil {
				size = st.Size()
			}
			err = lockError(err, size)
		}
		return nil, openError(path, opts.LockTimeout, err)
	}
	db, err := newDB(b, nil, true, opts)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	if clean {
		db.startCheck()
	}
	return db, nil
}

// OpenDB keeps plugintoken's buckets inside the bbolt database b that the
// host application already has open, all under one top-level bucket of
// their own (Options.Bucket, default "plugintoken"), so that a gateway needs
// no second file and no second lock. The host's own buckets are never read
// or written; the host keeps b, and Close leaves it open. The token cache
// relies on plugintoken being the only writer of its buckets: the host must
// not write under that bucket itself. Backup copies plugintoken's buckets
// only, into a file of their own.
func OpenDB(b *bolt.DB, opts Options) (*DB, error) {
	if b == nil {
		return nil, errors.New("store: OpenDB needs an open *bbolt.DB")
	}
	if opts.LockInMemory {
		return nil, errors.New("store: OpenDB cannot lock the host's file in memory (LockInMemory): open it with bbolt's Options.Mlock instead")
	}
	root := opts.Bucket
	if root == "" {
		root = "plugintoken"
	}
	return newDB(b, []byte(root), false, opts)
}

func newDB(b *bolt.DB, root []byte, owned bool, opts Options) (*DB, error) {
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	db := &DB{bolt: b, path: b.Path(), root: root, owned: owned, sweepBudget: sweepBudget}
	if err := db.init(); err != nil {
		return nil, err
	}
	if opts.TokenCacheSize == 0 {
		opts.TokenCacheSize = DefaultTokenCacheSize
	}
	db.cache = newTokenCache(opts.TokenCacheSize)
	db.commit = newCommitter(db.writeTx, opts.MaxBatchSize, opts.MaxBatchDelay)
	db.plugins = &pluginCache{m: make(map[string]*store.Plugin)}
	return db, nil
}

// openError explains an error of bolt.Open.
func openError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open %s: %w (waited %s; is another plugintoken running on it?)", path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch),
		// bbolt has no sentinel for a file shorter than its two meta
		// pages (a copy cut short): its message is the only sign.
		strings.HasPrefix(err.Error(), "file size too small"):
		return fmt.Errorf("%w: %s: %w (restore it from a backup)", ErrDamaged, path, err)
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// lockError explains a failure of mlock(2) at Open with LockInMemory: the
// process may not lock the file (EPERM) or not that much of it (ENOMEM,
// EAGAIN).
func lockError(err error, size int64) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) || (errno != syscall.EPERM && errno != syscall.ENOMEM && errno != syscall.EAGAIN) {
		return err
	}
	return fmt.Errorf("lock the file in memory (LockInMemory): %w: it needs %d KiB locked, the file's size; the process may lock at most RLIMIT_MEMLOCK ('ulimit -l'; LimitMEMLOCK= in a systemd unit) unless it has CAP_IPC_LOCK", err, (size+1023)/1024)
}

// init creates the buckets and checks the schema version, once, at open,
// and migrates a file of the version before.
func (db *DB) init() error {
	var migrate bool
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		type bucketCreator interface {
			CreateBucketIfNotExists([]byte) (*bolt.Bucket, error)
		}
		var tx bucketCreator = btx
		if db.root != nil {
			root, err := btx.CreateBucketIfNotExists(db.root)
			if err != nil {
				return fmt.Errorf("store: create bucket %s: %w", db.root, err)
			}
			tx = root
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, []byte(codec.SchemaVersion)); err != nil {
				return err
			}
		case string(v) == codec.UnindexedSchemaVersion:
			migrate = true
		case codec.Decodable(string(v)):
			// Its records decode as they are: record the version that
			// writes what older builds must not misread.
			if err := meta.Put(keySchema, []byte(codec.SchemaVersion)); err != nil {
				return err
			}
		case string(v) != codec.SchemaVersion:
			return fmt.Errorf("store: %s has schema version %q, this build reads %q", db.path, v, codec.SchemaVersion)
		}
		for _, name := range [][]byte{bucketPlugins, bucketCodes, bucketGrants, bucketExpiry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil || !migrate {
		return err
	}
	return db.migrate()
}

// migrateChunk is how many records one transaction of the migration
// indexes.
const migrateChunk = 10_000

// migrate brings a version 3 file to the current version in place: it
// writes the expiry entry of every code and grant, a chunk per transaction,
// and then the new version. Records are only read, never rewritten (format
// 1 records decode as they are), and an entry is the same whenever it is
// written: a process killed midway (SIGKILL, power loss) leaves a version 3
// file with some entries, which the next open migrates again from the
// start. Nothing can be lost.
func (db *DB) migrate() error {
	for _, bucket := range [][]byte{bucketCodes, bucketGrants} {
		var next []byte
		for first := true; first || next != nil; first = false {
			err := db.bolt.Update(func(btx *bolt.Tx) error {
				tx := db.txn(btx)
				var err error
				next, err = eachInChunk(tx, bucket, next, migrateChunk, func(k, v []byte) error {
					var key store.Key
					if len(k) != len(key) {
						return nil
					}
					copy(key[:], k)
					// A record that does not decode is left for the
					// sweep's reports, as before.
					if bytes.Equal(bucket, bucketCodes) {
						if c := (store.AuthCode{Key: key}); codec.DecodeAuthCode(v, &c) == nil {
							return index(tx, &c, nil)
						}
					} else if g := (store.Grant{Key: key}); codec.DecodeGrant(v, &g) == nil {
						return index(tx, nil, &g)
					}
					return nil
				})
				return err
			})
			if err != nil {
				return fmt.Errorf("store: migrate %s to schema %s: %w", db.path, codec.SchemaVersion, err)
			}
		}
	}
	return db.bolt.Update(func(btx *bolt.Tx) error {
		return db.txn(btx).Bucket(bucketMeta).Put(keySchema, []byte(codec.SchemaVersion))
	})
}

// Path returns the file the store was opened on.
func (db *DB) Path() string { return db.path }

// Close lets writes already submitted finish, refuses new ones with
// ErrClosed, and releases the file.
func (db *DB) Close() error {
	db.commit.close()
	if !db.owned {
		return nil // the host's database: the host closes it
	}
	if db.check != nil {
		db.check.stop.Store(true)
		<-db.check.done
	}
	// Write bbolt's freelist once (commits skip it, NoFreelistSync), so
	// that the next Open reads it instead of walking every page, and
	// leaves the walk of every element to the background (check.go). A
	// failure only costs the next open that walk.
	if db.damaged.Load() == nil {
		db.bolt.NoFreelistSync = false
		_ = db.writeTx(func(*bolt.Tx) error { return nil })
	}
	return db.bolt.Close()
}

// Ping reports whether the store can serve a read and, after a write has
// failed, whether writes succeed again: it then tries a small write of its
// own (64 KiB in meta/probe), and keeps reporting the failure
// (wrapping ErrUnavailable) until one succeeds.
func (db *DB) Ping(ctx context.Context) error {
	if d := db.damaged.Load(); d != nil {
		return *d
	}
	if err := db.view(ctx, func(tx txn) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	}); err != nil {
		return err
	}
	if db.writeErr.Load() == nil {
		return nil
	}
	// The probe is large enough (16 pages) that it needs fresh pages as a
	// batch of real writes does, rather than fitting in the few pages the
	// failed transaction left free.
	probe := make([]byte, 64<<10)
	return db.write(func(tx txn) error {
		return tx.Bucket(bucketMeta).Put(keyProbe, probe)
	})
}

// update1 is bbolt's Update with a damaged page's panic (in fn, or in the
// commit's rebalancing and spilling) turned into ErrDamaged: bbolt rolls
// the transaction back as the panic unwinds it, so nothing is written.
func (db *DB) update1(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer db.recoverDamage(&err)
	return db.bolt.Update(fn)
}

// Size returns the size of the database file in bytes (0 if it cannot be
// read).
func (db *DB) Size() int64 {
	st, err := os.Stat(db.path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Check verifies the file's consistency (every page reachable once, no
// page both used and free) and returns the first problem found.
func (db *DB) Check(ctx context.Context) error {
	return db.view(ctx, func(tx txn) error {
		var first error
		for err := range tx.Check() { // drained: the checker reads tx until it closes the channel
			if first == nil {
				first = fmt.Errorf("store: %s is inconsistent: %w", db.path, err)
			}
		}
		return first
	})
}

// Backup writes a consistent copy of plugintoken's data to w while writes
// go on: a database file of its own that Open (and `plugintoken serve --db`)
// accepts, to restore from. ready, when not nil, is called with the copy's
// size before the first byte is written (to set a Content-Length).
//
// A store of its own file (Open) is copied whole. A store kept in a host's
// database (OpenDB) copies only plugintoken's buckets, moved to the top of
// the copy: the host's own buckets are never read, and never leave through
// a backup.
//
// Unless w is a local file (*os.File), the copy is first taken from one
// read transaction into a temporary file beside the database (so it needs
// as much free space as plugintoken's data for a moment; the file is
// unlinked before anything is written to w), and only then written to w:
// the transaction lasts as long as the local copy, never as long as a slow
// reader of w (an HTTP client), so it cannot hold back the file's growth
// and stall writers.
func (db *DB) Backup(ctx context.Context, w io.Writer, ready func(size int64)) error {
	var f *os.File
	var err error
	switch out, isFile := w.(*os.File); {
	case db.root == nil && isFile:
		// A local file is the local copy: written straight from the
		// transaction (in the kernel, where the system can), once.
		return db.view(ctx, func(tx txn) error {
			if ready != nil {
				ready(tx.Size())
			}
			_, err := tx.WriteTo(kernelCopy{out})
			return err
		})
	case db.root == nil:
		f, err = db.copyFile(ctx)
	default:
		f, err = db.copyBuckets(ctx)
	}
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if ready != nil {
		ready(st.Size())
	}
	_, err = io.Copy(w, f)
	return err
}

// copyFile copies the whole file, as one read transaction sees it, into an
// unlinked temporary file, and returns it open at its start.
func (db *DB) copyFile(ctx context.Context) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(db.path), ".plugintoken-backup-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	if err := db.view(ctx, func(tx txn) error {
		_, err := tx.WriteTo(f)
		return err
	}); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// backupChunk is how many records one transaction of the copy's file takes.
const backupChunk = 10_000

// copyBuckets copies plugintoken's buckets under the host's root bucket,
// as one read transaction sees them, to the top of a new bbolt file, and
// returns that file unlinked and open at its start.
func (db *DB) copyBuckets(ctx context.Context) (f *os.File, err error) {
	dir, err := os.MkdirTemp(filepath.Dir(db.path), ".plugintoken-backup-*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // a temporary folder: at worst left behind
	path := filepath.Join(dir, "backup.db")
	// The copy is fsynced once, at the end, by its close: a crash leaves
	// only a folder to remove.
	dst, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	err = db.view(ctx, func(tx txn) error {
		root := tx.Tx.Bucket(db.root)
		return root.ForEachBucket(func(name []byte) error {
			return copyBucket(ctx, dst, name, root.Bucket(name))
		})
	})
	if err != nil {
		return nil, err
	}
	if err := dst.Sync(); err != nil {
		return nil, err
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil // the folder is removed; the open file stays readable
}

// copyBucket copies the records of src into a new top-level bucket name of
// dst, in transactions of backupChunk records. Keys come in order, so pages
// are filled whole.
func copyBucket(ctx context.Context, dst *bolt.DB, name []byte, src *bolt.Bucket) error {
	c := src.Cursor()
	k, v := c.First()
	if err := dst.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(name)
		return err
	}); err != nil {
		return err
	}
	for k != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := dst.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			b.FillPercent = 1
			for i := 0; k != nil && i < backupChunk; k, v = c.Next() {
				if v == nil {
					return fmt.Errorf("nested bucket %s/%x: plugintoken's buckets hold records only", name, k)
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
				i++
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// txn is a transaction as the store sees it: Bucket finds plugintoken's
// buckets at the top of the file (Open) or under the root bucket the host
// application gave (OpenDB).
type txn struct {
	*bolt.Tx
	root []byte
}

// Bucket returns plugintoken's bucket name.
func (tx txn) Bucket(name []byte) *bolt.Bucket {
	if tx.root == nil {
		return tx.Tx.Bucket(name)
	}
	return tx.Tx.Bucket(tx.root).Bucket(name)
}

func (db *DB) txn(tx *bolt.Tx) txn { return txn{Tx: tx, root: db.root} }

// view runs fn in a read transaction unless ctx is already done.
func (db *DB) view(ctx context.Context, fn func(txn) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A page that faults or that bbolt finds malformed is an error of
	// this call, never the end of the process (check.go).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer db.recoverDamage(&err)
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(db.txn(tx)) })
}

// batch runs fn in a write transaction shared with concurrent callers (the
// group commit in commit.go), fsynced before batch returns. fn may run more
// than once, so it must depend only on its arguments and tx. It returns an
// outcome and an error: a non-nil error rolls fn's writes back (and the
// other calls of the batch are run again without it); the outcome is what
// the caller is told once fn's writes have committed. A refusal is an
// outcome with nothing written, so it costs the batch nothing; a detection
// (a replay, a reuse) is an outcome whose revocation commits.
func (db *DB) batch(ctx context.Context, fn func(txn) (outcome, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var outcome error
	err := db.commit.do(func(tx *bolt.Tx) error {
		var err error
		outcome, err = fn(db.txn(tx))
		return err
	})
	if err != nil {
		return err
	}
	return outcome
}

// update runs fn in a write transaction of its own unless ctx is already
// done. The transaction is fsynced before update returns.
func (db *DB) update(ctx context.Context, fn func(txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.write(fn)
}

// write runs fn in a write transaction of its own (see writeTx).
func (db *DB) write(fn func(txn) error) error {
	return db.writeTx(func(tx *bolt.Tx) error { return fn(db.txn(tx)) })
}

// writeTx runs fn in a write transaction of its own and then settles the
// token cache: every write transaction of the store goes through it.
//
// A transaction that fn accepted but the file refused (disk full, an I/O
// error) is rolled back, nothing of it is visible, and the error is
// returned wrapping ErrUnavailable: the caller may retry. Until a write
// succeeds again, Ping reports the failure.
func (db *DB) writeTx(fn func(*bolt.Tx) error) (err error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	defer db.cache.settle()
	var fnErr error
	err = db.update1(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	switch {
	case err == nil:
		db.writeErr.Store(nil)
	case err != fnErr || errors.Is(err, berrors.ErrDatabaseNotOpen):
		err = fmt.Errorf("%w: write to %s: %w", store.ErrUnavailable, db.path, err)
		db.writeErr.Store(&err)
	}
	return err
}

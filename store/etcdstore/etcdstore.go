// Package etcdstore keeps plugintoken's plugins, auth codes and token pairs
// in etcd, for deployments where several plugintoken replicas must share
// them: a code redeemed through one replica is dead on all of them.
//
// It keeps the contract of package store (the conformance suite in
// store/storetest runs against both) by etcd's own means. Records are the
// bytes the bbolt backend writes (one shared codec, internal to
// package store), under
//
//	<prefix>meta/schema          -> the schema version ("6")
//	<prefix>meta/purge           -> set by a plugin's deletion until a sweep
//	                                has deleted its codes and tokens
//	<prefix>plugins/<plugin id>  -> Plugin
//	<prefix>codes/<hex key>      -> AuthCode, until it is redeemed or expires;
//	                                under <family>0…0, a revoked family's
//	                                code's tombstone
//	<prefix>grants/<hex key>     -> Grant
//	<prefix>expiry/<hex entry>   -> "": the expiry index (sweep.go)
//
// A grant's key starts with its family (the code's key), so a family is one
// key range and is revoked with one ranged delete. Every check-and-write —
// redeeming a code, rotating a refresh token, revoking on replay or reuse —
// reads the records, plans with the store's shared decisions, then
// writes in one etcd transaction that succeeds only if none of the records
// read has changed since (a compare on their ModRevision); if one has, it
// reads and decides again. Never a read followed by an unguarded write.
// Expiry is a stored deadline, as in bbolt: reads judge it, and Sweep
// deletes what the expiry index says is due.
//
// Nothing read is cached: every read goes to etcd, so a write through any
// replica is seen by all at once. (What is remembered is which plugin a
// grant belongs to, which never changes: see grantAndPlugin.)
package etcdstore

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
	"github.com/plugintoken/plugintoken/store/internal/decide"
)

// Options configure Open.
type Options struct {
	// Endpoints are the etcd members' client URLs or host:port.
	Endpoints []string
	// Prefix is prepended to every key. Default "/plugintoken/".
	Prefix string
	// DialTimeout bounds connecting at Open; RequestTimeout bounds every
	// operation afterwards. Defaults 5 s and 3 s.
	DialTimeout, RequestTimeout time.Duration
	// TLS, when set, secures the connection (client certificates included).
	TLS *tls.Config
	// Username and Password authenticate to etcd when set.
	Username, Password string
	// CompactInterval is how often Run compacts etcd's history, keeping
	// one interval of it. Zero means DefaultCompactInterval (5 minutes);
	// negative turns compaction off, for an etcd compacted by its operator
	// (etcd's --auto-compaction-retention). Without either, etcd keeps
	// every revision and its quota fills within days of traffic.
	CompactInterval time.Duration
	// Logger receives Run's reports (etcd's alarms, failed compactions).
	// Default: slog.Default().
	Logger *slog.Logger
}

// DB is a plugintoken store in etcd. It is safe for concurrent use, also
// by several processes on one etcd.
type DB struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
	// owned: Close closes c (Open), or leaves it to the host (New).
	owned bool
	// owners: see grantAndPlugin.
	owners owners
	// reads and writes batch reads and guarded writes (see them).
	reads  reads
	writes writes
	// upkeep is Run's: compaction and etcd's alarms (upkeep.go).
	upkeep *upkeep
}

// maxAttempts bounds the read-decide-write loop of one operation under
// contention: each failed attempt means another writer succeeded.
const maxAttempts = 64

// DefaultOptions are the defaults Open and New apply to zero fields.
func DefaultOptions() Options {
	return Options{Prefix: "/plugintoken/", DialTimeout: 5 * time.Second, RequestTimeout: 3 * time.Second, CompactInterval: DefaultCompactInterval}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = d.DialTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = d.RequestTimeout
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = d.CompactInterval
	}
	return o
}

// Open connects to etcd and checks (or writes) the schema version.
func Open(opts Options) (*DB, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no endpoints")
	}
	opts = opts.withDefaults()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		TLS:         opts.TLS,
		Username:    opts.Username,
		Password:    opts.Password,
		// Keep probing a dead connection, so that service resumes by
		// itself when etcd comes back.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		// The client's own log says WARN at every retry while etcd is
		// away; plugintoken says what matters once (Run: alarms, failed
		// compactions; the answers: 503). Only the client's errors show.
		LogConfig: quietClientLog(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connect to %v: %w", opts.Endpoints, err)
	}
	db := newDB(c, opts)
	// The first answer is waited for as long as DialTimeout says: the
	// client connects in the background, and its first request is what
	// finds etcd there or not.
	if err := db.init(opts.DialTimeout); err != nil {
		_ = c.Close()
		if errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("etcdstore: no answer from etcd at %s within %s (the dial timeout): is it running, and reachable from here? (%w)",
				strings.Join(opts.Endpoints, ","), opts.DialTimeout, err)
		}
		return nil, err
	}
	db.owned = true
	return db, nil
}

// New keeps plugintoken's keys, under opts.Prefix, in the etcd that the host
// application's client c already talks to. Only Prefix, RequestTimeout,
// CompactInterval and Logger of opts are used; the host keeps c, and Close
// leaves it open.
func New(c *clientv3.Client, opts Options) (*DB, error) {
	if c == nil {
		return nil, errors.New("etcdstore: New needs a client")
	}
	opts = opts.withDefaults()
	db := newDB(c, opts)
	if err := db.init(opts.RequestTimeout); err != nil {
		return nil, err
	}
	return db, nil
}

func newDB(c *clientv3.Client, opts Options) *DB {
	return &DB{c: c, prefix: opts.Prefix, timeout: opts.RequestTimeout, owners: owners{max: defaultOwners},
		reads: newReads(c, opts.RequestTimeout), writes: newWrites(c, opts.RequestTimeout), upkeep: newUpkeep(opts)}
}

// init writes the schema version if the prefix is new, or checks it,
// waiting at most timeout for etcd's answer.
func (db *DB) init(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	key := db.prefix + "meta/schema"
	resp, err := db.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, codec.SchemaVersion)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		switch got := string(resp.Responses[0].GetResponseRange().Kvs[0].Value); got {
		case codec.SchemaVersion:
		case codec.UnindexedSchemaVersion:
			return db.migrate(codec.UnindexedSchemaVersion)
		default:
			if codec.Decodable(got) {
				// The records decode as they are: record the version
				// that writes what older builds must not misread.
				return db.migrate(got)
			}
			return fmt.Errorf("etcdstore: %s has schema version %q, this build reads %q", db.prefix, got, codec.SchemaVersion)
		}
	}
	return nil
}

// Close closes the connection Open made; a client given to New is the
// host's, and stays open.
func (db *DB) Close() error {
	if !db.owned {
		return nil
	}
	return db.c.Close()
}

// quietClientLog is the etcd client's zap configuration: errors only, as
// JSON to stderr.
func quietClientLog() *zap.Config {
	c := zap.NewProductionConfig()
	c.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	c.Sampling = nil
	return &c
}

// unavailable wraps an etcd client error as store.ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: etcd: %v", store.ErrUnavailable, err)
}

// ctx bounds one operation.
func (db *DB) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, db.timeout)
}

func (db *DB) pluginKey(id string) string  { return db.prefix + "plugins/" + id }
func (db *DB) purgeKey() string            { return db.prefix + "meta/purge" }
func (db *DB) expiryPrefix() string        { return db.prefix + "expiry/" }
func (db *DB) codeKey(k store.Key) string  { return db.prefix + "codes/" + hex.EncodeToString(k[:]) }
func (db *DB) grantKey(k store.Key) string { return db.prefix + "grants/" + hex.EncodeToString(k[:]) }
func (db *DB) familyKey(f store.Family) string {
	return db.prefix + "grants/" + hex.EncodeToString(f[:])
}

// apply writes a plan in one transaction guarded by cmps, and reports
// whether it is done: a plan that writes nothing (a refusal) is done at
// once; one whose guards failed (another writer came first) is not, and is
// decided again on fresh reads.
func (db *DB) apply(ctx context.Context, plan decide.Plan, cmps []clientv3.Cmp) (bool, error) {
	if !plan.Writes() {
		return true, nil
	}
	var ops []clientv3.Op
	if plan.RevokeFamily != nil {
		ops = append(ops, clientv3.OpDelete(db.familyKey(*plan.RevokeFamily), clientv3.WithPrefix()))
	}
	if c := plan.Consume; c != nil {
		ops = append(ops, clientv3.OpDelete(db.codeKey(c.Key)), clientv3.OpDelete(db.entryKey(decide.Deadline(c, nil), codec.ExpiryCode, c.Key)))
	}
	if t := plan.Tombstone; t != nil {
		ops = append(ops, clientv3.OpPut(db.codeKey(t.Key), marshal(t)), db.indexOp(t, nil))
	}
	for i := range plan.Grants {
		ops = append(ops, clientv3.OpPut(db.grantKey(plan.Grants[i].Key), marshal(&plan.Grants[i])), db.indexOp(nil, &plan.Grants[i]))
	}
	return db.commit(ctx, cmps, ops...)
}

// commit writes ops if cmps hold, and reports whether they did (batched
// with other callers' writes: see writes).
func (db *DB) commit(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	ok, err := db.writes.do(ctx, cmps, ops)
	if err != nil {
		return false, unavailable(err)
	}
	return ok, nil
}

// retry runs attempt until it reports done, fails, or the attempts run out
// (which only a storm of concurrent writers on the same records causes).
func (db *DB) retry(ctx context.Context, attempt func() (done bool, err error)) error {
	for range maxAttempts {
		done, err := attempt()
		if err != nil || done {
			return err
		}
		if err := ctx.Err(); err != nil {
			return unavailable(err)
		}
	}
	return fmt.Errorf("%w: etcd: too much contention", store.ErrUnavailable)
}

// Ping reports whether etcd can serve: it answers a linearizable read in
// time (which needs a quorum), and raises no alarm. While etcd reports
// NOSPACE it refuses every write, so Ping fails (wrapping
// store.ErrUnavailable) with the operator's fix, and a load balancer stops
// sending traffic; it passes again as soon as the alarm is disarmed.
func (db *DB) Ping(ctx context.Context) error {
	cctx, cancel := db.ctx(ctx)
	defer cancel()
	if _, err := db.c.Get(cctx, db.prefix+"meta/schema"); err != nil {
		return unavailable(err)
	}
	alarm, err := db.alarms(ctx)
	if err != nil {
		return unavailable(err)
	}
	if alarm != "" {
		return errAlarm(alarm)
	}
	return nil
}

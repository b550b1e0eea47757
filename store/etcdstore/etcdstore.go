// Package etcdstore keeps plugintoken's plugins, auth codes and token pairs
// in etcd, for deployments where several plugintoken replicas must share
// them: a code redeemed through one replica is dead on all of them.
//
// It keeps the contract of package store (the conformance suite in
// store/storetest runs against both) by etcd's own means. Records are the
// bytes the bbolt backend writes (one shared codec, internal to
// package store), under
//
//	<prefix>meta/schema          -> the schema version ("4")
//	<prefix>meta/purge           -> set by a plugin's deletion until a sweep
//	                                has deleted its codes and tokens
//	<prefix>plugins/<plugin id>  -> Plugin
//	<prefix>codes/<hex key>      -> AuthCode
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
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
		case codec.PreviousSchemaVersion:
			return db.migrate()
		default:
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

func marshal[R *store.Plugin | *store.AuthCode | *store.Grant](v R) string {
	switch v := any(v).(type) {
	case *store.Plugin:
		return string(codec.EncodePlugin(v))
	case *store.AuthCode:
		return string(codec.EncodeAuthCode(v))
	case *store.Grant:
		return string(codec.EncodeGrant(v))
	}
	panic("unreachable")
}

// read is a record read in a transaction, with the revision the write must
// compare against (0: absent).
type read struct {
	raw []byte
	rev int64
}

// readAll reads keys in one transaction, so they are one consistent
// snapshot (batched with other callers' reads: see reads).
func (db *DB) readAll(ctx context.Context, keys ...string) ([]read, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	resps, err := db.reads.do(ctx, ops...)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]read, len(keys))
	for i, r := range resps {
		if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
			out[i] = read{raw: kvs[0].Value, rev: kvs[0].ModRevision}
		}
	}
	return out, nil
}

// unchanged guards a write on records not having changed since they were
// read (absent ones still absent).
func unchanged(keys []string, reads []read) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(keys))
	for i, k := range keys {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(k), "=", reads[i].rev)
	}
	return cmps
}

// readWithPlugin reads keys in one snapshot, the first being a plugin's,
// and decodes that plugin (nil when absent).
func (db *DB) readWithPlugin(ctx context.Context, keys ...string) ([]read, *store.Plugin, error) {
	reads, err := db.readAll(ctx, keys...)
	if err != nil {
		return nil, nil, err
	}
	p, err := decodePlugin(reads[0])
	return reads, p, err
}

func decodePlugin(r read) (*store.Plugin, error) {
	if r.raw == nil {
		return nil, nil
	}
	var p store.Plugin
	if err := codec.DecodePlugin(r.raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func decodeCode(r read, key store.Key) (*store.AuthCode, error) {
	if r.raw == nil {
		return nil, nil
	}
	c := store.AuthCode{Key: key}
	if err := codec.DecodeAuthCode(r.raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func decodeGrant(r read, key store.Key) (*store.Grant, error) {
	if r.raw == nil {
		return nil, nil
	}
	g := store.Grant{Key: key}
	if err := codec.DecodeGrant(r.raw, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// CreatePlugin stores a new plugin, or returns store.ErrExists.
func (db *DB) CreatePlugin(ctx context.Context, p store.Plugin) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	k := db.pluginKey(p.ID)
	resp, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, marshal(&p))).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return store.ErrExists
	}
	return nil
}

// Plugin returns a plugin, or store.ErrNotFound.
func (db *DB) Plugin(ctx context.Context, id string) (store.Plugin, error) {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	_, p, err := db.readWithPlugin(ctx, db.pluginKey(id))
	if err != nil {
		return store.Plugin{}, err
	}
	if p == nil {
		return store.Plugin{}, store.ErrNotFound
	}
	return *p, nil
}

// DeletePlugin removes a plugin, or returns store.ErrNotFound. Its codes and
// token pairs are unknown to every read from then on; the next Sweep
// deletes them (meta/purge asks it to).
func (db *DB) DeletePlugin(ctx context.Context, id string) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	k := db.pluginKey(id)
	resp, err := db.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).
		Then(clientv3.OpDelete(k), clientv3.OpPut(db.purgeKey(), id)).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return store.ErrNotFound
	}
	return nil
}

// SetPluginSecret replaces a plugin's secret hash, or returns
// store.ErrNotFound.
func (db *DB) SetPluginSecret(ctx context.Context, id string, secret store.Hash, hint string, now time.Time) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(id)}
	return db.retry(ctx, func() (bool, error) {
		reads, err := db.readAll(ctx, keys...)
		if err != nil {
			return false, err
		}
		p, err := decodePlugin(reads[0])
		if err != nil || p == nil {
			return false, errors.Join(err, notFoundIfNil(p))
		}
		p.SecretHash, p.SecretHint, p.UpdatedAt = secret, hint, now
		return db.commit(ctx, unchanged(keys, reads), clientv3.OpPut(keys[0], marshal(p)))
	})
}

func notFoundIfNil(p *store.Plugin) error {
	if p == nil {
		return store.ErrNotFound
	}
	return nil
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
	if plan.Code != nil {
		ops = append(ops, clientv3.OpPut(db.codeKey(plan.Code.Key), marshal(plan.Code)))
		if m := plan.CodeEntry; !m.To.IsZero() {
			ops = append(ops, clientv3.OpDelete(db.entryKey(m.From, codec.ExpiryCode, plan.Code.Key)),
				clientv3.OpPut(db.entryKey(m.To, codec.ExpiryCode, plan.Code.Key), ""))
		}
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

// CreateAuthCode stores a new code for an existing plugin. It returns
// store.ErrNotFound when the plugin does not exist, store.ErrExists when the
// key is taken.
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	pk, ck := db.pluginKey(c.PluginID), db.codeKey(c.Key)
	resp, err := db.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(pk), ">", 0), clientv3.Compare(clientv3.CreateRevision(ck), "=", 0)).
		Then(clientv3.OpPut(ck, marshal(&c)), db.indexOp(&c, nil)).
		Else(clientv3.OpGet(pk, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return store.ErrNotFound
		}
		return store.ErrExists
	}
	return nil
}

// RedeemAuthCode keeps the contract of store.Store's RedeemAuthCode: the code
// is checked and consumed, and the grant stored, in one etcd transaction
// guarded by the revisions of the plugin and the code, so of any number of
// concurrent redemptions through any number of replicas exactly one
// succeeds. A replay revokes the code's family in one transaction too.
func (db *DB) RedeemAuthCode(ctx context.Context, r store.Redemption) error {
	if err := r.Check(); err != nil {
		return err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(r.PluginID), db.codeKey(r.Code.Key)}
	var outcome error
	err := db.retry(ctx, func() (bool, error) {
		reads, p, err := db.readWithPlugin(ctx, keys...)
		if err != nil {
			return false, err
		}
		c, err := decodeCode(reads[1], r.Code.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Redemption(r, p, c)
		outcome = plan.Outcome
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return err
	}
	return outcome
}

// grantAndPlugin reads a grant and whether the plugin it names exists, as
// one snapshot: the plugin is read at the revision the grant was read at,
// so the pair is the state of one instant (a plugin deleted, or deleted and
// created again, in between cannot mix two states). A grant whose plugin is
// gone reads as absent.
//
// A grant's plugin never changes, so once a grant has been read its
// plugin's id is remembered (owners) and the next read of it is one etcd
// transaction of both reads, instead of a read of the grant then one of the
// plugin. Nothing read is cached: both records are read every time.
func (db *DB) grantAndPlugin(ctx context.Context, key store.Key) (*store.Grant, read, error) {
	if pluginID, ok := db.owners.get(key); ok {
		resps, err := db.reads.do(ctx,
			clientv3.OpGet(db.grantKey(key)),
			clientv3.OpGet(db.pluginKey(pluginID), clientv3.WithCountOnly()),
		)
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		var r read
		if kvs := resps[0].GetResponseRange().Kvs; len(kvs) > 0 {
			r = read{raw: kvs[0].Value, rev: kvs[0].ModRevision}
		}
		g, err := decodeGrant(r, key)
		switch {
		case err != nil:
			return nil, r, err
		case g == nil:
			db.owners.forget(key)
			return nil, r, nil
		case g.PluginID == pluginID:
			if resps[1].GetResponseRange().Count == 0 {
				return nil, r, nil
			}
			return g, r, nil
		}
		// Another plugin's grant under the key (keys are never reused, so
		// this does not happen): read it the long way.
		db.owners.forget(key)
	}
	// The plugin is read at the revision the grant was read at. Run's
	// compaction (this replica's or another's) keeps an interval of
	// history, far more than the moment between the two reads; should a
	// compaction still pass that revision (a stalled process), both are
	// read again.
	var resp *clientv3.GetResponse
	var exists *clientv3.GetResponse
	var r read
	var g *store.Grant
	for attempt := 0; ; attempt++ {
		var err error
		resp, err = db.c.Get(ctx, db.grantKey(key))
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		r = read{}
		if len(resp.Kvs) > 0 {
			r = read{raw: resp.Kvs[0].Value, rev: resp.Kvs[0].ModRevision}
		}
		g, err = decodeGrant(r, key)
		if err != nil || g == nil {
			return nil, r, err
		}
		exists, err = db.c.Get(ctx, db.pluginKey(g.PluginID), clientv3.WithCountOnly(), clientv3.WithRev(resp.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, read{}, unavailable(err)
		}
		break
	}
	db.owners.put(key, g.PluginID)
	if exists.Count == 0 {
		return nil, r, nil
	}
	return g, r, nil
}

// owners remembers which plugin a grant belongs to (a fact that never
// changes), for at most max grants: past that, it starts over.
type owners struct {
	mu  sync.Mutex
	m   map[store.Key]string
	max int
}

// defaultOwners bounds owners: about 80 bytes a grant.
const defaultOwners = 65536

func (o *owners) get(k store.Key) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id, ok := o.m[k]
	return id, ok
}

func (o *owners) put(k store.Key, pluginID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= o.max {
		o.m = make(map[store.Key]string)
	}
	o.m[k] = pluginID
}

func (o *owners) forget(k store.Key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, k)
}

// Token returns the token a Ref presents, or store.ErrNotFound. The result
// is the caller's own (nothing is cached).
func (db *DB) Token(ctx context.Context, ref store.Ref) (*store.Token, error) {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	g, _, err := db.grantAndPlugin(ctx, ref.Key)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, store.ErrNotFound
	}
	kind, ok := decide.Presents(g, ref)
	if !ok {
		return nil, store.ErrNotFound
	}
	t := decide.View(g, kind)
	return &t, nil
}

// RotateRefreshToken keeps the contract of store.Store's RotateRefreshToken,
// with the check, the rotation (or the family's revocation on reuse) in one
// etcd transaction guarded by the revisions read.
func (db *DB) RotateRefreshToken(ctx context.Context, r store.Rotation) (store.Grant, error) {
	if err := r.Check(); err != nil {
		return store.Grant{}, err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	keys := []string{db.pluginKey(r.PluginID), db.grantKey(r.Refresh.Key)}
	var outcome error
	var fresh store.Grant
	err := db.retry(ctx, func() (bool, error) {
		reads, p, err := db.readWithPlugin(ctx, keys...)
		if err != nil {
			return false, err
		}
		old, err := decodeGrant(reads[1], r.Refresh.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Rotation(r, p, old)
		outcome, fresh = plan.Outcome, plan.Result
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return store.Grant{}, err
	}
	if outcome != nil {
		return store.Grant{}, outcome
	}
	return fresh, nil
}

// RevokeToken keeps the contract of store.Store's RevokeToken: an access
// token is revoked alone; a refresh token, live or rotated, revokes its
// whole family in one transaction guarded by the revisions read.
func (db *DB) RevokeToken(ctx context.Context, r store.Revocation) error {
	if err := r.Check(); err != nil {
		return err
	}
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	var outcome error
	err := db.retry(ctx, func() (bool, error) {
		var p *store.Plugin
		var pread read
		if r.PluginID != "" {
			reads, plugin, err := db.readWithPlugin(ctx, db.pluginKey(r.PluginID))
			if err != nil {
				return false, err
			}
			p, pread = plugin, reads[0]
		}
		g, gread, err := db.grantAndPlugin(ctx, r.Token.Key)
		if err != nil {
			return false, err
		}
		plan := decide.Revocation(r, p, g)
		outcome = plan.Outcome
		keys, reads := []string{db.grantKey(r.Token.Key)}, []read{gread}
		if r.PluginID != "" {
			keys, reads = append(keys, db.pluginKey(r.PluginID)), append(reads, pread)
		}
		return db.apply(ctx, plan, unchanged(keys, reads))
	})
	if err != nil {
		return err
	}
	return outcome
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

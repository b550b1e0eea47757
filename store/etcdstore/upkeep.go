package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/plugintoken/plugintoken/store"
)

// DefaultCompactInterval is how often Run compacts etcd's history when
// Options.CompactInterval is zero: every five minutes, as Kubernetes' API
// server does, keeping the last five minutes of history.
const DefaultCompactInterval = 5 * time.Minute

// alarmCheckInterval is how often Run asks etcd for its alarms.
const alarmCheckInterval = 5 * time.Second

// upkeep is the state of Run's background work, shared with Ping and the
// metrics.
type upkeep struct {
	log *slog.Logger
	// compactEvery is Options.CompactInterval (0: Run does not compact).
	compactEvery time.Duration

	mu sync.Mutex
	// alarm is the alarm etcd last reported ("" when none).
	alarm string

	compactions *prometheus.CounterVec
	compacted   prometheus.Gauge
	alarmed     *prometheus.GaugeVec
}

func newUpkeep(opts Options) *upkeep {
	u := &upkeep{log: opts.Logger, compactEvery: max(0, opts.CompactInterval)}
	if u.log == nil {
		u.log = slog.Default()
	}
	u.compactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plugintoken_etcd_compactions_total",
		Help: "Compactions of etcd's history plugintoken asked for, by result (ok, already: another replica had compacted further, error).",
	}, []string{"result"})
	for _, r := range []string{"ok", "already", "error"} {
		u.compactions.WithLabelValues(r)
	}
	u.compacted = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plugintoken_etcd_compacted_revision", Help: "The revision plugintoken last compacted etcd's history to.",
	})
	u.alarmed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plugintoken_etcd_alarm",
		Help: "1 while etcd reports the alarm (nospace: the backend is at its quota and refuses every write; corrupt), else 0.",
	}, []string{"alarm"})
	for _, a := range []string{"nospace", "corrupt"} {
		u.alarmed.WithLabelValues(a)
	}
	return u
}

// Collectors are the etcd store's Prometheus metrics: compactions, the
// compacted revision and etcd's alarms. server.New registers them in the
// server's registry.
func (db *DB) Collectors() []prometheus.Collector {
	return []prometheus.Collector{db.upkeep.compactions, db.upkeep.compacted, db.upkeep.alarmed}
}

// Run keeps etcd healthy for plugintoken until ctx is done, then returns
// nil (core.Service.Run calls it):
//
//   - Every Options.CompactInterval it compacts etcd's history to the
//     revision it saw one interval earlier, so that the history of
//     plugintoken's writes (several revisions an exchange) never fills
//     etcd's quota; the last interval of history is kept. Any number of
//     replicas may do so at once: a compaction another replica already
//     went past is counted as "already" and is harmless, since
//     plugintoken never reads at a revision older than a few requests.
//   - Every few seconds it asks etcd for its alarms, and logs one ERROR
//     line when etcd starts refusing writes (NOSPACE) with the operator's
//     fix, and one INFO line when it accepts them again.
func (db *DB) Run(ctx context.Context) error {
	u := db.upkeep
	var compact <-chan time.Time
	if u.compactEvery > 0 {
		t := time.NewTicker(u.compactEvery)
		defer t.Stop()
		compact = t.C
	}
	alarms := time.NewTicker(alarmCheckInterval)
	defer alarms.Stop()
	db.checkAlarms(ctx)
	var behind int64 // the revision seen one interval ago
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-alarms.C:
			db.checkAlarms(ctx)
		case <-compact:
			behind = db.compact(ctx, behind)
		}
	}
}

// compact compacts the history to rev (when positive) and returns the
// current revision, to compact to next time.
func (db *DB) compact(ctx context.Context, rev int64) int64 {
	u := db.upkeep
	cctx, cancel := db.ctx(ctx)
	defer cancel()
	resp, err := db.c.Get(cctx, db.prefix+"meta/schema", clientv3.WithCountOnly())
	if err != nil {
		u.compactions.WithLabelValues("error").Inc()
		if ctx.Err() == nil {
			u.log.Warn("etcd: cannot read the current revision to compact to", "err", err)
		}
		return rev
	}
	now := resp.Header.Revision
	if rev <= 0 {
		return now
	}
	_, err = db.c.Compact(cctx, rev)
	switch {
	case err == nil:
		u.compactions.WithLabelValues("ok").Inc()
		u.compacted.Set(float64(rev))
	case errors.Is(err, rpctypes.ErrCompacted):
		u.compactions.WithLabelValues("already").Inc()
	default:
		u.compactions.WithLabelValues("error").Inc()
		if ctx.Err() == nil {
			u.log.Warn("etcd: compaction failed; it is tried again next interval", "revision", rev, "err", err)
		}
		return rev
	}
	return now
}

// checkAlarms reads etcd's alarms and reports a change.
func (db *DB) checkAlarms(ctx context.Context) {
	alarm, err := db.alarms(ctx)
	if err != nil {
		return // unreachable: Ping says so, and writes answer 503
	}
	u := db.upkeep
	u.mu.Lock()
	was := u.alarm
	u.alarm = alarm
	u.mu.Unlock()
	for _, a := range []string{"nospace", "corrupt"} {
		v := 0.0
		if strings.Contains(alarm, a) {
			v = 1
		}
		u.alarmed.WithLabelValues(a).Set(v)
	}
	switch {
	case alarm != "" && alarm != was:
		u.log.Error(alarmAdvice(alarm), "alarm", alarm)
	case alarm == "" && was != "":
		u.log.Info("etcd accepts writes again: its alarm was disarmed", "alarm", was)
	}
}

// alarms returns etcd's active alarms ("nospace", "corrupt", joined), or
// "" when there is none.
func (db *DB) alarms(ctx context.Context) (string, error) {
	ctx, cancel := db.ctx(ctx)
	defer cancel()
	resp, err := db.c.AlarmList(ctx)
	if err != nil {
		return "", err
	}
	var names []string
	for _, a := range resp.Alarms {
		switch a.Alarm {
		case etcdserverpb.AlarmType_NOSPACE:
			names = append(names, "nospace")
		case etcdserverpb.AlarmType_CORRUPT:
			names = append(names, "corrupt")
		}
	}
	return strings.Join(names, ","), nil
}

// alarmAdvice is what an operator does about an alarm.
func alarmAdvice(alarm string) string {
	if strings.Contains(alarm, "nospace") {
		return "etcd raised its NOSPACE alarm: its backend reached its quota (--quota-backend-bytes) and it refuses every write, " +
			"so no code or token can be issued. Fix: compact its history (plugintoken does every --etcd-compact-interval, " +
			"or `etcdctl compact $(etcdctl endpoint status -w json | jq .[0].Status.header.revision)`), " +
			"then `etcdctl defrag` on each member, then `etcdctl alarm disarm`; raise the quota if live data fills it. " +
			"plugintoken recovers by itself once etcd accepts writes"
	}
	return "etcd raised its " + strings.ToUpper(alarm) + " alarm and refuses writes: see etcd's logs, restore the member, then `etcdctl alarm disarm`"
}

// errAlarm is Ping's error while etcd reports an alarm.
func errAlarm(alarm string) error {
	return fmt.Errorf("%w: %s", store.ErrUnavailable, alarmAdvice(alarm))
}

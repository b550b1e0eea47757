// Package core is plugintoken's service with no framework in it: every
// operation of Teable's plugin token flow as a plain Go method over a
// store.Store (register a plugin, issue an auth code, exchange, refresh,
// authenticate, introspect, revoke, sweep), the credential format, the scope
// vocabulary, the failure limiter, and the one error type (*Error) with its
// code table. It knows nothing of HTTP or Echo: package server is the
// adapter that serves it (and the Echo and net/http middleware), and a
// gateway built on another framework can call it directly.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// The failure limiter's defaults: DefaultMaxFailures failed credentials
// per key per DefaultFailureWindow.
const (
	DefaultMaxFailures   = 10
	DefaultFailureWindow = time.Minute
)

// Default lifetimes, Teable's.
const (
	DefaultAuthCodeTTL     = 300 * time.Second
	DefaultAccessTokenTTL  = 600 * time.Second
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
)

// MaxLifetime bounds every configured lifetime: the store keeps times as
// nanoseconds since 1970, which end in year 2262.
const MaxLifetime = 100 * 365 * 24 * time.Hour

// Config configures a Service. Store is required; for everything else zero
// means the default.
type Config struct {
	Store store.Store
	// Logger receives the audit lines and errors. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Lifetimes; zero means the default.
	AuthCodeTTL, AccessTokenTTL, RefreshTokenTTL time.Duration
	// Scopes is the plugin scope vocabulary. Default: DefaultScopes().
	Scopes []string
	// RefreshReuseGrace lets a refresh token rotated less than this long
	// ago be presented again and answered with a new pair, instead of
	// revoking its family. Zero (the default) treats every reuse as theft.
	RefreshReuseGrace time.Duration
	// MaxFailures failed secrets, codes or tokens per plugin and client
	// address (or other failures a host counts with CountFailure) are
	// allowed per FailureWindow; then attempts get CodeTooManyRequests
	// until the budget refills. Zero means 10 per minute; a negative
	// MaxFailures turns limiting off.
	MaxFailures   int
	FailureWindow time.Duration
	// MaxLimiterKeys bounds how many keys the failure limiter remembers;
	// past it the least recently failing is forgotten. Zero means 100,000.
	MaxLimiterKeys int
	// SweepInterval is how often Run deletes expired records. Zero means
	// DefaultSweepInterval (a minute); negative turns Run's sweeping off,
	// for a deployment that sweeps elsewhere.
	SweepInterval time.Duration
	// Observer is told of the service's events (tokens issued, refreshed
	// and revoked, thefts detected, attempts rate limited, sweeps), for
	// metrics. Default: none. A server.Server adds its Prometheus series
	// to it.
	Observer Observer
}

// Service is plugintoken's service. Create it with New; it is safe for
// concurrent use.
type Service struct {
	store      store.Store
	log        *slog.Logger
	now        func() time.Time
	codeTTL    time.Duration
	accessTTL  time.Duration
	refreshTTL time.Duration
	scopes     []string
	vocabulary vocabulary
	reuseGrace time.Duration
	failures   *failureLimiter
	observer   Observer

	// sweepEvery is Config.SweepInterval (0: Run does not sweep).
	sweepEvery time.Duration
	lifecycle  lifecycle

	// sweepMu guards undecodable: the records the sweeper already reported.
	sweepMu     sync.Mutex
	undecodable map[string]bool
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("core: Config.Store is required")
	}
	for _, d := range []time.Duration{cfg.AuthCodeTTL, cfg.AccessTokenTTL, cfg.RefreshTokenTTL, cfg.RefreshReuseGrace} {
		if d < 0 {
			return nil, fmt.Errorf("core: negative lifetime %s", d)
		}
		if d > MaxLifetime {
			return nil, fmt.Errorf("core: lifetime %s is longer than the longest supported, %s (100 years): expiry times past year 2262 cannot be stored", d, MaxLifetime)
		}
	}
	s := &Service{
		store:       cfg.Store,
		log:         cfg.Logger,
		now:         cfg.Now,
		codeTTL:     orDefault(cfg.AuthCodeTTL, DefaultAuthCodeTTL),
		accessTTL:   orDefault(cfg.AccessTokenTTL, DefaultAccessTokenTTL),
		refreshTTL:  orDefault(cfg.RefreshTokenTTL, DefaultRefreshTokenTTL),
		scopes:      cfg.Scopes,
		reuseGrace:  cfg.RefreshReuseGrace,
		observer:    cfg.Observer,
		undecodable: map[string]bool{},
		sweepEvery:  max(0, orDefault(cfg.SweepInterval, DefaultSweepInterval)),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.observer == nil {
		s.observer = noObserver{}
	}
	if s.scopes == nil {
		s.scopes = DefaultScopes()
	}
	s.vocabulary = newVocabulary(s.scopes)
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.FailureWindow == 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	s.failures = newFailureLimiter(cfg.MaxFailures, cfg.FailureWindow, cfg.MaxLimiterKeys)
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Store returns the store the service runs on.
func (s *Service) Store() store.Store { return s.store }

// Scopes returns the scope vocabulary: what a plugin may be registered
// with and a token may carry.
func (s *Service) Scopes() []string { return slices.Clone(s.scopes) }

// Caller is who makes a request, for the audit lines and the failure
// limiter: the admin subject the host authenticated (empty for a plugin's
// own request) and the client address.
type Caller struct {
	Subject string
	Address string
}

type callerKey struct{}

// WithCaller returns ctx carrying the caller of the service calls made
// with it. Without one, calls are audited with no subject and rate-limited
// under an empty address.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller put on ctx by WithCaller.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// Principal is what a valid access token grants: the plugin acting, the base
// it acts in and the scopes it holds. It is the caller's own copy.
type Principal struct {
	PluginID string
	BaseID   string
	// Subject is who the token's auth code was issued for (IssueAuthCode),
	// or empty.
	Subject   string
	Scopes    []string
	ExpiresAt time.Time
}

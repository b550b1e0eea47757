package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// parseServeFlags turns the serve flags, with PLUGINTOKEN_* environment
// variables as defaults, into a Config.
func parseServeFlags(args []string, getenv func(string) string, stdout io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("plugintoken serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help printed below
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on (host:port)")
	fs.StringVar(&cfg.DBPath, "db", cfg.DBPath, "bbolt database file (created 0600 if missing)")
	fs.BoolVar(&cfg.LockInMemory, "db-lock-in-memory", cfg.LockInMemory,
		"lock the whole bbolt file in memory (mlock), so that lookups never wait for the disk; needs CAP_IPC_LOCK or a memlock limit above the file's size (docs/operations.md)")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", "",
		"file of admin bearer tokens, one per line (default: admin-token beside the database;\n"+
			"generated there on first start when no token is configured)")
	fs.DurationVar(&cfg.AuthCodeTTL, "auth-code-ttl", cfg.AuthCodeTTL, "lifetime of an auth code")
	fs.DurationVar(&cfg.AccessTokenTTL, "access-token-ttl", cfg.AccessTokenTTL, "lifetime of an access token")
	fs.DurationVar(&cfg.RefreshTokenTTL, "refresh-token-ttl", cfg.RefreshTokenTTL, "lifetime of a refresh token")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long SIGINT/SIGTERM waits for in-flight requests")
	fs.DurationVar(&cfg.RefreshReuseGrace, "refresh-reuse-grace", cfg.RefreshReuseGrace,
		"how long a rotated refresh token may be presented again without revoking its family (0: never)")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", cfg.SweepInterval, "how often expired codes and tokens are deleted")
	fs.IntVar(&cfg.MaxBatchSize, "max-batch-size", cfg.MaxBatchSize, "group commit: most writes per transaction (0: 256)")
	fs.DurationVar(&cfg.MaxBatchDelay, "max-batch-delay", cfg.MaxBatchDelay, "group commit: wait this long before each transaction to gather writes (0: commit as soon as the previous commit is done)")
	fs.IntVar(&cfg.MaxFailures, "max-failures", cfg.MaxFailures,
		"failed secrets/codes/tokens per plugin and client (or failed admin tokens per client) allowed per failure window; then 429 (-1: no limit)")
	fs.DurationVar(&cfg.FailureWindow, "failure-window", cfg.FailureWindow, "the window of --max-failures")
	fs.Func("etcd-endpoints", "use etcd (host:port[,host:port...]) instead of the bbolt file", func(v string) error {
		cfg.Etcd.Endpoints = splitTokens(v)
		return nil
	})
	fs.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", cfg.Etcd.Prefix, "prefix of every key plugintoken writes in etcd")
	fs.StringVar(&cfg.Etcd.CAFile, "etcd-ca", "", "CA certificate file to verify etcd (turns TLS on)")
	fs.StringVar(&cfg.Etcd.CertFile, "etcd-cert", "", "client certificate file for etcd (mutual TLS)")
	fs.StringVar(&cfg.Etcd.KeyFile, "etcd-key", "", "client key file for etcd (mutual TLS)")
	fs.StringVar(&cfg.Etcd.Username, "etcd-username", "", "etcd user (password from PLUGINTOKEN_ETCD_PASSWORD)")
	fs.DurationVar(&cfg.Etcd.DialTimeout, "etcd-dial-timeout", cfg.Etcd.DialTimeout, "how long to wait for etcd at start")
	fs.DurationVar(&cfg.Etcd.RequestTimeout, "etcd-request-timeout", cfg.Etcd.RequestTimeout,
		"bound of every etcd operation: past it the request answers 503")
	fs.DurationVar(&cfg.Etcd.CompactInterval, "etcd-compact-interval", cfg.Etcd.CompactInterval,
		"how often plugintoken compacts etcd's history, keeping one interval of it (0: never, for an etcd that compacts itself)")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", cfg.DebugAddr, "serve net/http/pprof on this address (off when empty; keep it on loopback)")
	fs.BoolVar(&cfg.TokenRequiresBearer, "token-requires-bearer", cfg.TokenRequiresBearer,
		"also require an admin bearer on the token and refresh routes (the upstream spec's bearerAuth)")
	fs.Usage = func() {}
	// Environment first, so that the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PLUGINTOKEN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w%s", name, v, err, durationHint(f))
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText("plugintoken serve", "", serveSummary, serveExamples, fs))
		return cfg, err
	} else if err != nil {
		return cfg, fmt.Errorf("%w%s", err, durationHintFor(fs, err))
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"auth-code-ttl", cfg.AuthCodeTTL}, {"access-token-ttl", cfg.AccessTokenTTL}, {"refresh-token-ttl", cfg.RefreshTokenTTL}} {
		if d.v < time.Second {
			return cfg, fmt.Errorf("-%s must be at least 1s, got %s", d.name, d.v)
		}
	}
	switch {
	case cfg.Etcd.CompactInterval == 0:
		cfg.Etcd.CompactInterval = -1 // etcdstore: negative is off
	case cfg.Etcd.CompactInterval < time.Second:
		return cfg, fmt.Errorf("-etcd-compact-interval must be at least 1s, or 0 to turn it off; got %s", cfg.Etcd.CompactInterval)
	}
	if cfg.LockInMemory && len(cfg.Etcd.Endpoints) > 0 {
		return cfg, errors.New("-db-lock-in-memory locks the bbolt file, and -etcd-endpoints stores in etcd instead: give one of them")
	}
	if cfg.SweepInterval < time.Second {
		return cfg, fmt.Errorf("-sweep-interval must be at least 1s, got %s", cfg.SweepInterval)
	}
	if cfg.MaxFailures == 0 || cfg.FailureWindow <= 0 {
		return cfg, fmt.Errorf("-max-failures must be positive (or -1 for no limit) and -failure-window positive")
	}
	if cfg.RefreshReuseGrace < 0 {
		return cfg, fmt.Errorf("-refresh-reuse-grace must not be negative, got %s", cfg.RefreshReuseGrace)
	}
	if cfg.AdminTokenFile == "" {
		cfg.AdminTokenFile = defaultAdminTokenFile(cfg.DBPath)
	}
	cfg.AdminTokens = splitTokens(getenv("PLUGINTOKEN_ADMIN_TOKEN"))
	// Kept out of the flags so that it never shows in a process list.
	cfg.Etcd.Password = getenv("PLUGINTOKEN_ETCD_PASSWORD")
	return cfg, nil
}

// durationHint says what a duration flag expects, for an error setting it.
func durationHint(f *flag.Flag) string {
	if _, ok := f.Value.(flag.Getter).Get().(time.Duration); ok {
		return " (a duration with its unit, like 300s, 5m or 1h30m)"
	}
	return ""
}

// durationHintFor is durationHint for the flag a parse error names.
func durationHintFor(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	var hint string
	fs.VisitAll(func(f *flag.Flag) {
		if strings.Contains(msg, "-"+f.Name+":") {
			hint = durationHint(f)
		}
	})
	return hint
}

// splitTokens splits a comma-separated list, dropping blanks.
func splitTokens(s string) []string {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/server/docs"
	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/boltstore"
	"github.com/plugintoken/plugintoken/store/etcdstore"
)

// Config is everything `plugintoken serve` is told. It embeds the library's
// own configurations, so that each setting is declared (and defaulted, and
// documented) once: the service's (lifetimes, reuse grace, bearer option,
// failure limits; Main sets its Store, Admin and Logger), the bbolt store's
// (group commit) and etcd's.
type Config struct {
	server.Config
	boltstore.Options
	Addr           string
	DBPath         string
	AdminTokens    []string // from PLUGINTOKEN_ADMIN_TOKEN
	AdminTokenFile string
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// DebugAddr, when set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string
	// Etcd, when it has endpoints, selects the etcd backend instead of the
	// bbolt file.
	Etcd EtcdConfig
}

// EtcdConfig is how to reach etcd: etcdstore's options, with the TLS
// configuration given as files.
type EtcdConfig struct {
	etcdstore.Options
	CertFile string // client certificate (mutual TLS)
	KeyFile  string
	CAFile   string // CA to verify the members; TLS is on when any file is set
}

// DefaultConfig is the configuration of a bare `plugintoken serve`: the
// library's defaults, and the binary's own settings.
func DefaultConfig() Config {
	return Config{
		Config: server.Config{Config: core.Config{
			AuthCodeTTL:     core.DefaultAuthCodeTTL,
			AccessTokenTTL:  core.DefaultAccessTokenTTL,
			RefreshTokenTTL: core.DefaultRefreshTokenTTL,
			MaxFailures:     core.DefaultMaxFailures,
			FailureWindow:   core.DefaultFailureWindow,
			SweepInterval:   core.DefaultSweepInterval,
		}},
		Addr:            "127.0.0.1:8080",
		DBPath:          filepath.Join("data", "plugintoken.db"),
		ShutdownTimeout: 15 * time.Second,
		Etcd:            EtcdConfig{Options: etcdstore.DefaultOptions()},
	}
}

// defaultAdminTokenFile is the admin token file beside the database.
func defaultAdminTokenFile(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "admin-token")
}

// Main is the running service: the store, the HTTP server and their
// lifecycle. Tests use it as the binary does.
type Main struct {
	Config Config
	Log    *slog.Logger

	db       backend
	listener net.Listener
	http     *http.Server
	debug    *http.Server
	served   chan error
	srv      *server.Server
	stopWork context.CancelFunc
	workDone chan struct{}
}

// NewMain returns a Main that logs to logw.
func NewMain(cfg Config, logw io.Writer) *Main {
	return &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(logw, nil))}
}

// Run starts the service and serves until ctx is done, then shuts down.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		m.Log.Info("shutting down", "drain_timeout", m.Config.ShutdownTimeout)
	case err := <-m.served:
		m.stopWork()
		<-m.workDone
		_ = m.srv.Close()
		return fmt.Errorf("http server: %w", err)
	}
	return m.Close()
}

// Start opens the store, listens and serves in the background.
func (m *Main) Start() (err error) {
	cfg := m.Config
	// Listen first: an address that cannot be bound must fail before
	// anything is written (an admin token file, a database).
	m.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: the address is in use (another plugintoken, or another server?): stop it, or choose another with --addr host:port: %w", cfg.Addr, err)
		}
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer func() {
		if err != nil {
			_ = m.listener.Close()
		}
	}()
	// The store before the admin token: a database that cannot be opened
	// must fail before a token file is generated beside it.
	m.db, err = m.openStore()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = m.db.Close()
		}
	}()
	admin, generated, err := m.adminAuthenticator()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && generated != "" {
			_ = os.Remove(generated) // a failed start leaves no token file behind
		}
	}()
	scfg := cfg.Config
	scfg.Store, scfg.Admin, scfg.Logger = m.db, admin, m.Log
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	m.srv = srv
	h, err := srv.Handler()
	if err != nil {
		return err
	}
	if err := docs.Mount(h, "/docs", "/api/openapi.json"); err != nil {
		return err
	}
	m.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() {
		if err := m.http.Serve(m.listener); !errors.Is(err, http.ErrServerClosed) {
			m.served <- err
		}
		close(m.served)
	}()
	if cfg.DebugAddr != "" {
		dl, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			_ = m.listener.Close()
			return fmt.Errorf("listen on debug address %s: %w", cfg.DebugAddr, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = m.debug.Serve(dl) }()
		m.Log.Info("serving pprof", "addr", dl.Addr().String())
	}
	workCtx, stop := context.WithCancel(context.Background())
	m.stopWork, m.workDone = stop, make(chan struct{})
	go func() {
		defer close(m.workDone)
		if err := srv.Run(workCtx); err != nil {
			m.Log.Error("background work stopped", "err", err)
		}
	}()
	m.Log.Info("serving", "addr", m.listener.Addr().String(), "store", m.storeName(), "version", buildVersion())
	return nil
}

// Addr is the address the service listens on (useful with port 0).
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Close drains in-flight requests for up to ShutdownTimeout, then closes the
// database. New connections are refused from the moment it is called.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	herr := m.http.Shutdown(ctx)
	if herr != nil {
		herr = fmt.Errorf("drain requests: %w", herr)
		_ = m.http.Close()
	}
	if m.debug != nil {
		_ = m.debug.Close()
	}
	m.stopWork()
	<-m.workDone
	derr := m.srv.Close()
	if derr == nil {
		m.Log.Info("database closed", "store", m.storeName())
	}
	return errors.Join(herr, derr)
}

// adminAuthenticator accepts the tokens of PLUGINTOKEN_ADMIN_TOKEN and of the
// admin token file. When neither has one, it generates a token into the file
// (0600) so that a first start gives a working credential, and logs the
// file's path, never the token.
func (m *Main) adminAuthenticator() (auth server.AdminAuthenticator, generated string, err error) {
	path := m.Config.AdminTokenFile
	tokens := append([]string(nil), m.Config.AdminTokens...)
	for _, t := range tokens {
		if err := server.CheckAdminToken(t); err != nil {
			return nil, "", fmt.Errorf("PLUGINTOKEN_ADMIN_TOKEN: %w", err)
		}
	}
	fromFile, err := readTokenFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(tokens) == 0:
		tok, err := writeNewTokenFile(path)
		if err != nil {
			return nil, "", err
		}
		generated = path
		m.Log.Warn("no admin token configured: generated one", "file", path)
		tokens = append(tokens, tok)
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, "", err
	default:
		tokens = append(tokens, fromFile...)
	}
	auth, err = server.StaticTokens(tokens...)
	if err != nil {
		if generated != "" {
			_ = os.Remove(generated)
		}
		return nil, "", fmt.Errorf("admin tokens: %w", err)
	}
	return auth, generated, nil
}

// readTokenFile reads one token per line; blank lines and # comments are
// skipped. A file that group or others can read is refused, as ssh refuses
// such a key, and so is a weak token (server.CheckAdminToken): each error
// names the file and the fix.
func readTokenFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("admin token file %s can be read by group or others (mode %04o): run `chmod 600 %s`", path, st.Mode().Perm(), path)
	}
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			if err := server.CheckAdminToken(line); err != nil {
				return nil, fmt.Errorf("admin token file %s, line %d: %w", path, n, err)
			}
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read admin token file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin token file %s holds no token", path)
	}
	return out, nil
}

// writeNewTokenFile creates path (0600, failing if it exists) holding a new
// random admin token, and returns the token.
func writeNewTokenFile(path string) (string, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := "ptadmin_" + base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create admin token file: %w", err)
	}
	if _, err := fmt.Fprintln(f, tok); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return tok, f.Close()
}

// backend is a store the binary can open and close.
type backend interface {
	store.Store
	Close() error
}

// openStore opens etcd when endpoints are configured, the bbolt file
// otherwise.
func (m *Main) openStore() (backend, error) {
	cfg := m.Config
	if len(cfg.Etcd.Endpoints) == 0 {
		return boltstore.Open(cfg.DBPath, cfg.Options)
	}
	e := cfg.Etcd
	var tlsCfg *tls.Config
	if e.CertFile != "" || e.KeyFile != "" || e.CAFile != "" {
		var err error
		if tlsCfg, err = (transport.TLSInfo{CertFile: e.CertFile, KeyFile: e.KeyFile, TrustedCAFile: e.CAFile}).ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	opts := e.Options
	opts.TLS, opts.Logger = tlsCfg, m.Log
	return etcdstore.Open(opts)
}

// storeName says where the data is, for logs (never the etcd password).
func (m *Main) storeName() string {
	if len(m.Config.Etcd.Endpoints) > 0 {
		return "etcd " + strings.Join(m.Config.Etcd.Endpoints, ",") + " prefix " + m.Config.Etcd.Prefix
	}
	return "bbolt " + m.Config.DBPath
}

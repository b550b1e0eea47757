// Package etcdtest runs a real, embedded single-node etcd server for tests
// and benchmarks (never a fake), on loopback ports chosen at start, which
// it keeps across Stop and Start so that clients can reconnect.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Server is an embedded etcd.
type Server struct {
	// Endpoint is the client address, host:port.
	Endpoint string

	mu   sync.Mutex
	cfg  *embed.Config
	etcd *embed.Etcd
}

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
	Cleanup(func())
}

// Start starts an etcd with its data in a temporary folder; it is stopped
// when the test ends.
func Start(tb TB) *Server {
	tb.Helper()
	s, err := StartIn(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartWith is Start with configure applied to the server's configuration
// (a limit set below its default, say) before it starts.
func StartWith(tb TB, configure func(*embed.Config)) *Server {
	tb.Helper()
	s, err := startIn(tb.TempDir(), configure)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartIn starts an etcd with its data in dir. The caller stops it.
func StartIn(dir string) (*Server, error) { return startIn(dir, nil) }

// StartInWith is StartIn with configure applied to the configuration.
func StartInWith(dir string, configure func(*embed.Config)) (*Server, error) {
	return startIn(dir, configure)
}

func startIn(dir string, configure func(*embed.Config)) (*Server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cu := url.URL{Scheme: "http", Host: client}
	pu := url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{os.DevNull}
	if configure != nil {
		configure(cfg)
	}
	s := &Server{Endpoint: client, cfg: cfg}
	return s, s.Start()
}

// Start (re)starts the server on its ports and data.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return nil
	}
	var e *embed.Etcd
	var err error
	// The ports may take a moment to be free again after a Stop.
	for range 50 {
		if e, err = embed.StartEtcd(s.cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("etcdtest: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcdtest: not ready after 30 s")
	}
	s.etcd = e
	return nil
}

// Stop stops the server; its data stays for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

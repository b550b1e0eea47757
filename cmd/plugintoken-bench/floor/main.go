// Command floor is the least a token exchange can cost on this machine, for
// plugintoken-bench to measure beside plugintoken (-floor): the same HTTP
// server settings, Echo with the same recovery and request log line, and on
// each exchange one fsynced bbolt write shared by every exchange waiting
// (a group commit, the same bbolt options as package boltstore) that reads
// an auth code's record, writes it back marked redeemed and inserts a
// token record, keyed by time as plugintoken's are and of about their size.
//
// What it leaves out is what makes an exchange safe: no request validation,
// no plugin or secret check, no token minted or hashed, no audit line, no
// metrics, no refusal decided before the commit. Its answers have the shape
// of plugintoken's and its /healthz is plugintoken's, so the ratio of its
// exchange to its /healthz is the ceiling of plugintoken's exchange ratio.
// Its introspection answers a constant: the ceiling of a POST with a JSON
// body and an admin bearer.
//
// It takes plugintoken's serve flags that plugintoken-bench passes
// (serve --addr A --db FILE) and nothing else.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/plugintoken/plugintoken/server"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketCodes  = []byte("codes")
	bucketGrants = []byte("grants")
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	path := fs.String("db", "floor.db", "bbolt file")
	_ = fs.Parse(args)

	db, err := bolt.Open(*path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketCodes); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketGrants)
		return err
	}); err != nil {
		log.Fatal(err)
	}
	commit := newCommitter(db)

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(middleware.Recover(), server.RequestLogger(logger))
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.POST("/api/plugin", func(c echo.Context) error {
		return c.JSON(http.StatusCreated, map[string]any{"id": "pluFloor", "name": "floor", "secret": "floor"})
	})
	e.POST("/api/plugin/:id/authCode", func(c echo.Context) error {
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		key := newKey()
		rec := make([]byte, 96)
		if err := commit.do(func(tx *bolt.Tx) error { return tx.Bucket(bucketCodes).Put(key, rec) }); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"code": hex.EncodeToString(key), "expiresIn": 300})
	})
	e.POST("/api/plugin/:id/token", func(c echo.Context) error {
		var req struct {
			AuthCode string   `json:"authCode"`
			Scopes   []string `json:"scopes"`
		}
		b, err := io.ReadAll(c.Request().Body)
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		code, herr := hex.DecodeString(req.AuthCode)
		if err != nil || herr != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "bad request")
		}
		grantKey := newKey()
		grant := make([]byte, 160)
		if err := commit.do(func(tx *bolt.Tx) error {
			codes := tx.Bucket(bucketCodes)
			v := codes.Get(code)
			if v == nil || v[0] != 0 {
				return errInvalidCode
			}
			redeemed := append([]byte(nil), v...)
			redeemed[0] = 1
			if err := codes.Put(code, redeemed); err != nil {
				return err
			}
			return tx.Bucket(bucketGrants).Put(grantKey, grant)
		}); errors.Is(err, errInvalidCode) {
			return echo.NewHTTPError(http.StatusBadRequest, "invalid auth code")
		} else if err != nil {
			return err
		}
		token := hex.EncodeToString(append(grantKey, grantKey...))
		return c.JSON(http.StatusOK, map[string]any{"accessToken": "pta_" + token, "refreshToken": "ptr_" + token,
			"scopes": req.Scopes, "expiresIn": 3600, "refreshExpiresIn": 2592000})
	})
	e.POST("/api/token/introspect", func(c echo.Context) error {
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"active": true, "tokenType": "access", "pluginId": "pluFloor",
			"baseId": "bseBench", "scopes": []string{"table|read"}, "exp": 1, "iat": 1})
	})
	srv := &http.Server{Addr: *addr, Handler: e, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

var errInvalidCode = errors.New("invalid auth code")

var keySeq atomic.Uint64

// newKey is 16 bytes that sort by time, as plugintoken's record keys do.
func newKey() []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(k[8:], keySeq.Add(1))
	return k
}

// committer runs every write waiting in one bbolt transaction and one
// fsync; the next writes queue meanwhile.
type committer struct {
	db    *bolt.DB
	mu    sync.Mutex
	queue []call
	wake  chan struct{}
}

type call struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, wake: make(chan struct{}, 1)}
	go c.loop()
	return c
}

func (c *committer) do(fn func(*bolt.Tx) error) error {
	done := make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, call{fn, done})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return <-done
}

func (c *committer) loop() {
	for range c.wake {
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			// A call that fails is answered with its error and the rest
			// are committed without it.
			failed := make([]error, len(batch))
			err := c.db.Update(func(tx *bolt.Tx) error {
				for i, call := range batch {
					switch err := call.fn(tx); {
					case errors.Is(err, errInvalidCode):
						failed[i] = err
					case err != nil:
						return err
					}
				}
				return nil
			})
			for i, call := range batch {
				if failed[i] != nil {
					call.done <- failed[i]
				} else {
					call.done <- err
				}
			}
		}
	}
}

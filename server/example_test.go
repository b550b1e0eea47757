package server_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/store"
)

// A gateway mounts plugintoken's routes in its own Echo application under a
// prefix of its choosing, with its own admin authenticator. plugintoken
// answers its own errors in Teable's error body whatever the gateway's error
// handler does.
func ExampleServer_Mount() {
	dir, _ := os.MkdirTemp("", "plugintoken-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "plugintoken.db"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	srv, err := server.New(server.Config{
		Store: db,
		// The gateway decides who is an admin, here with its own session token.
		Admin: func(_ context.Context, bearer string) (string, error) {
			if bearer != "gateway-session-of-an-admin" {
				return "", server.ErrUnauthorized
			}
			return "alice", nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	gateway := echo.New()
	gateway.HTTPErrorHandler = func(err error, c echo.Context) { _ = c.String(599, "gateway error page") }
	gateway.GET("/status", func(c echo.Context) error { return c.String(http.StatusOK, "gateway up") })
	if _, err := srv.Mount(gateway, "/teable/api"); err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(gateway)
	defer ts.Close()

	call := func(method, path, token, body string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
		fmt.Println(method, path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	call("GET", "/status", "", "")
	call("POST", "/teable/api/plugin", "gateway-session-of-an-admin", `{"name":"Chart"}`)
	call("POST", "/teable/api/plugin", "", `{"name":"Chart"}`)
	call("GET", "/teable/api/plugin/pluNoSuchPlugin0000", "gateway-session-of-an-admin", "")
	// Output:
	// GET /status 200 text/plain; charset=UTF-8
	// POST /teable/api/plugin 201 application/json
	// POST /teable/api/plugin 401 application/json
	// GET /teable/api/plugin/pluNoSuchPlugin0000 404 application/json
}

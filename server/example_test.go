package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
	"github.com/plugintoken/plugintoken/store/boltstore"
)

// A gateway mounts plugintoken's routes in its own Echo application under a
// prefix of its choosing, with its own admin authenticator. plugintoken
// answers its own errors in Teable's error body whatever the gateway's error
// handler does.
func ExampleServer_Mount() {
	dir, _ := os.MkdirTemp("", "plugintoken-example")
	defer os.RemoveAll(dir)
	db, err := boltstore.Open(filepath.Join(dir, "plugintoken.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	srv, err := server.New(server.Config{
		Config: core.Config{Store: db, Logger: slog.New(slog.DiscardHandler)}, // the gateway's own logger
		// The gateway decides who is an admin, here with its own session token.
		Admin: func(_ *http.Request, bearer string) (string, error) {
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
	if _, err := srv.Mount(gateway, "/teable/api"); err != nil {
		log.Fatal(err)
	}
	// One of the gateway's own routes, for plugins holding record|read.
	gateway.GET("/records", func(c echo.Context) error {
		p, _ := server.PrincipalFrom(c)
		return c.String(http.StatusOK, "records of base "+p.BaseID)
	}, srv.RequireToken("record|read"))
	ts := httptest.NewServer(gateway)
	defer ts.Close()

	call := func(method, path, token, body string) map[string]any {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		fmt.Println(method, strings.ReplaceAll(path, idOf(path), "{id}"), res.StatusCode)
		out := map[string]any{}
		if json.Unmarshal(raw, &out) != nil {
			fmt.Println(" ", string(raw))
		}
		return out
	}
	admin := "gateway-session-of-an-admin"
	plugin := call("POST", "/teable/api/plugin", admin, `{"name":"Chart","scopes":["record|read"]}`)
	id, secret := plugin["id"].(string), plugin["secret"].(string)
	code := call("POST", "/teable/api/plugin/"+id+"/authCode", admin, `{"baseId":"bseABC"}`)["code"].(string)
	tok := call("POST", "/teable/api/plugin/"+id+"/token", "",
		`{"baseId":"bseABC","secret":"`+secret+`","scopes":["record|read"],"authCode":"`+code+`"}`)
	call("GET", "/records", tok["accessToken"].(string), "")
	call("GET", "/records", "", "")
	// Output:
	// POST /teable/api/plugin 201
	// POST /teable/api/plugin/{id}/authCode 200
	// POST /teable/api/plugin/{id}/token 200
	// GET /records 200
	//   records of base bseABC
	// GET /records 401
}

// idOf finds a plugin id in a path, so that the example's output is stable.
func idOf(path string) string {
	for _, part := range strings.Split(path, "/") {
		if strings.HasPrefix(part, "plu") && len(part) == 19 {
			return part
		}
	}
	return "\x00"
}

// A gateway that signs its users in itself uses the service in-process:
// no HTTP hop, no generated types. It registers a plugin, issues a code for
// a base, lets the plugin backend exchange it, authenticates the access
// token on its own route, and revokes as an admin.
func ExampleServer_IssueAuthCode() {
	dir, _ := os.MkdirTemp("", "plugintoken-example")
	defer os.RemoveAll(dir)
	db, err := boltstore.Open(filepath.Join(dir, "plugintoken.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	srv, err := server.New(server.Config{Config: core.Config{Store: db, Logger: slog.New(slog.DiscardHandler)}, Admin: func(*http.Request, string) (string, error) { return "", server.ErrUnauthorized }})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	plugin, _ := srv.CreatePlugin(ctx, "Chart", []string{"record|read"})
	code, _ := srv.IssueAuthCode(ctx, plugin.ID, "bseABC", "alice") // for the signed-in user
	pair, _ := srv.Exchange(ctx, plugin.ID, core.TokenRequest{BaseID: "bseABC", Secret: plugin.Secret,
		AuthCode: code.Code, Scopes: []string{"record|read"}})
	who, _ := srv.Authenticate(ctx, pair.AccessToken)
	fmt.Println(who.Subject, who.BaseID, who.Scopes)

	_ = srv.RevokeToken(ctx, pair.RefreshToken) // revokes the family
	_, err = srv.Authenticate(ctx, pair.AccessToken)
	fmt.Println(err)

	_, err = srv.IssueAuthCode(ctx, plugin.ID, "", "")
	fmt.Println(err)
	// Output:
	// alice bseABC [record|read]
	// unauthorized: A valid plugin access token is required
	// validation_error: baseId: must not be empty
}

// Package docs serves plugintoken's interactive API reference: Swagger UI
// (npm package swagger-ui-dist, its version in the Makefile's docs-assets
// target), embedded so that nothing is fetched from a CDN at run time. It is
// a package of its own so that its assets (about 2 MB) are linked only into
// programs that mount the page.
package docs

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed index.html swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE
var assets embed.FS

// Mount serves the reference page at path (for example "/docs"), reading
// the overlaid document from specURL (for example "/api/openapi.json").
func Mount(e *echo.Echo, path, specURL string) error {
	page, err := template.ParseFS(assets, "index.html")
	if err != nil {
		return err
	}
	var html bytes.Buffer
	if err := page.Execute(&html, struct{ Base, SpecURL string }{path, specURL}); err != nil {
		return err
	}
	rendered := html.Bytes()
	e.GET(path, func(c echo.Context) error { return c.HTMLBlob(http.StatusOK, rendered) })
	// The folder form (where the file server sends /docs/index.html) is the
	// page's address too; the raw index.html is a template, never served.
	e.GET(path+"/", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, path) })
	files := http.StripPrefix(path, http.FileServerFS(fs.FS(assets)))
	e.GET(path+"/*", echo.WrapHandler(files))
	return nil
}

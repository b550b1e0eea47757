package server

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// The API reference page is Swagger UI (npm package swagger-ui-dist, its
// version in the Makefile's docs-assets target), embedded in the binary so
// that nothing is fetched from a CDN at run time.
//
//go:embed docs
var docsFS embed.FS

var docsPage = template.Must(template.ParseFS(docsFS, "docs/index.html"))

// MountDocs serves the interactive API reference at path (for example
// "/docs"), reading the overlaid spec from specURL (for example
// "/api/openapi.json").
func MountDocs(e *echo.Echo, path, specURL string) error {
	var page bytes.Buffer
	if err := docsPage.Execute(&page, struct{ Base, SpecURL string }{path, specURL}); err != nil {
		return err
	}
	html := page.Bytes()
	e.GET(path, func(c echo.Context) error { return c.HTMLBlob(http.StatusOK, html) })
	// The folder form (where the file server sends /docs/index.html) is the
	// page's address too; the raw index.html is a template, never served.
	e.GET(path+"/", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, path) })
	assets, err := fs.Sub(docsFS, "docs")
	if err != nil {
		return err
	}
	files := http.StripPrefix(path, http.FileServerFS(assets))
	e.GET(path+"/*", echo.WrapHandler(files))
	return nil
}

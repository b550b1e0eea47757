package server

// The middleware every mounted route runs.

import (
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
)

// answerErrors writes any error returned below it in Teable's error body, so
// that the embedding application's error handler never sees plugintoken's
// errors.
func (s *Server) answerErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			s.writeError(c, err)
		}
		return nil
	}
}

// requireJSON answers 415 for a request body that is not JSON, before the
// validator reads it (the validator would say 400).
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		ct := r.Header.Get(echo.HeaderContentType)
		if ct == echo.MIMEApplicationJSON { // what every client sends: nothing to parse
			return next(c)
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return errNotJSON
		}
		return next(c)
	}
}

// noStore keeps tokens, secrets and codes out of every cache (RFC 6749 §5.1).
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Both values in one allocation, the response's own (a shared
		// slice could be edited in place by a host's middleware); the keys
		// are canonical already.
		v := make([]string, 2)
		v[0], v[1] = "no-store", "no-cache"
		h := c.Response().Header()
		h[echo.HeaderCacheControl], h["Pragma"] = v[0:1:1], v[1:2:2]
		return next(c)
	}
}

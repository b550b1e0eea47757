package server

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
)

// contextKeyReason is where writeError leaves the reason for the log line.
const contextKeyReason = "plugintoken.reason"

// maxBodyBytes bounds every request body: the largest real request is a few
// hundred bytes.
const maxBodyBytes = 64 << 10

// The adapter's own refusals.
var (
	// ErrUnauthorized is the refusal of a missing or refused admin bearer
	// token: an AdminAuthenticator returns it (or any *core.Error of code
	// core.CodeUnauthorized) to refuse.
	ErrUnauthorized = &core.Error{Code: core.CodeUnauthorized, Reason: "admin_bearer_refused",
		Message: "A valid admin bearer token is required"}
	errInternal            = core.Errorf(core.CodeInternal, "Internal server error")
	errMethodNotAllowedMsg = "Method not allowed"
	errBodyTooLarge        = core.Errorf(core.CodeTooLarge, "Request body is larger than %d bytes", maxBodyBytes)
	errNotJSON             = core.Errorf(core.CodeUnsupportedMedia, "Content-Type must be application/json")
	errNotImplemented      = core.Errorf(core.CodeNotImplemented, "This operation is not implemented yet")
)

// answer is an error as it is answered: the *core.Error and its status,
// which is the code's unless a host's error had a status no code names (a
// host's 422 keeps its 422, not 500).
type answer struct {
	e      *core.Error
	status int
}

// retryAfterSeconds rounds a wait up to whole seconds for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// asError turns any error into the *core.Error to answer with. Errors that are
// neither a *core.Error nor an echo.HTTPError are internal: the client gets a
// bare 500 and the detail goes to the log.
func asError(err error) answer {
	var e *core.Error
	if errors.As(err, &e) {
		return answer{e, e.Status()}
	}
	// The body limit's error may come back wrapped by the request
	// validator, which read the body.
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return answer{errBodyTooLarge, errBodyTooLarge.Status()}
	}
	if errors.Is(err, gen.ErrNotImplemented) {
		return answer{errNotImplemented, errNotImplemented.Status()}
	}
	// A storage engine out of reach is the operator's problem, and the
	// client may retry: 503, not 500.
	if errors.Is(err, core.ErrUnavailable) {
		return answer{&core.Error{Code: core.CodeServiceUnavailable, Message: "Storage unavailable; retry later", Err: err, RetryAfter: time.Second}, http.StatusServiceUnavailable}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		// A nested *core.Error (for instance from the authenticator, carried
		// through the request validator) says more than the status.
		if errors.As(he.Internal, &e) {
			return answer{e, e.Status()}
		}
		code, ok := core.CodeOf(he.Code)
		status := he.Code
		if !ok {
			// A status no code names (from the host's authenticator or
			// middleware) keeps its status, with the nearest code.
			code = core.CodeInternal
			if he.Code >= 400 && he.Code < 500 {
				code = core.CodeValidation
			}
			if he.Code < 400 || he.Code > 599 {
				status = http.StatusInternalServerError
			}
		}
		msg := http.StatusText(he.Code)
		switch m := he.Message.(type) {
		case string:
			msg = m
		case error:
			msg = m.Error()
		}
		var re *openapi3filter.RequestError
		if errors.As(he.Internal, &re) {
			msg = validationMessage(re)
		}
		switch code {
		case core.CodeInternal:
			msg = errInternal.Message // the detail stays in the log
		case core.CodeMethodNotAllowed:
			msg = errMethodNotAllowedMsg
		}
		return answer{&core.Error{Code: code, Message: msg, Err: he}, status}
	}
	return answer{&core.Error{Code: core.CodeInternal, Message: errInternal.Message, Err: err}, http.StatusInternalServerError}
}

// writeError answers the request with err in Teable's error body, or with
// Config.RenderError. It is where the routes' errors become HTTP responses
// (the gateway middleware answers its own refusals from bodies made once,
// refusalBodies, and net/http's through writeErrorHTTP).
func (s *Server) writeError(c echo.Context, err error) {
	log := s.log
	a := asError(err)
	e, status := a.e, a.status
	c.Set(contextKeyReason, e.LogReason())
	switch {
	case status == http.StatusServiceUnavailable, status == http.StatusNotImplemented:
		log.WarnContext(c.Request().Context(), e.Message,
			"method", c.Request().Method, "route", c.Path(), "err", e.Error())
	case status >= 500:
		// Only the operator sees the detail. Handlers never put secrets
		// into error details, so the detail is safe to log.
		log.ErrorContext(c.Request().Context(), "request failed",
			"method", c.Request().Method, "route", c.Path(), "err", e.Error())
	}
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	if status == http.StatusUnauthorized && h.Get(echo.HeaderWWWAuthenticate) == "" {
		h.Set(echo.HeaderWWWAuthenticate, `Bearer realm="plugintoken"`)
	}
	if e.RetryAfter > 0 {
		h.Set(echo.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	if s.renderError != nil {
		if rerr := s.renderError(c, status, e); rerr != nil {
			log.ErrorContext(c.Request().Context(), "Config.RenderError failed", "err", rerr)
		}
		if c.Response().Committed {
			return
		}
	}
	body := gen.Error{Message: e.Message, Status: status, Code: string(e.Code)}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	if werr := c.JSON(status, body); werr != nil {
		log.ErrorContext(c.Request().Context(), "writing error response", "err", werr)
	}
}

// writeErrorHTTP answers with e in Teable's error body, for the net/http
// middleware (no echo context there).
func writeErrorHTTP(w http.ResponseWriter, a answer) {
	e, status := a.e, a.status
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(gen.Error{Message: e.Message, Status: status, Code: string(e.Code)})
}

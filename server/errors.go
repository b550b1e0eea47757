package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store"
)

// Code is one of Teable's error codes, the `code` of the error body.
type Code string

// The error codes Teable's clients know.
const (
	CodeValidation         Code = "validation_error"
	CodeUnauthorized       Code = "unauthorized"
	CodeRestricted         Code = "restricted_resource"
	CodeNotFound           Code = "not_found"
	CodeMethodNotAllowed   Code = "method_not_allowed"
	CodeTooLarge           Code = "payload_too_large"
	CodeUnsupportedMedia   Code = "unsupported_media_type"
	CodeTooManyRequests    Code = "too_many_requests"
	CodeInternal           Code = "internal_server_error"
	CodeServiceUnavailable Code = "service_unavailable"
	CodeNotImplemented     Code = "not_implemented"
)

// statusOf is the one table from error code to HTTP status.
var statusOf = map[Code]int{
	CodeValidation:         http.StatusBadRequest,
	CodeUnauthorized:       http.StatusUnauthorized,
	CodeRestricted:         http.StatusForbidden,
	CodeNotFound:           http.StatusNotFound,
	CodeMethodNotAllowed:   http.StatusMethodNotAllowed,
	CodeTooLarge:           http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia:   http.StatusUnsupportedMediaType,
	CodeTooManyRequests:    http.StatusTooManyRequests,
	CodeInternal:           http.StatusInternalServerError,
	CodeServiceUnavailable: http.StatusServiceUnavailable,
	CodeNotImplemented:     http.StatusNotImplemented,
}

// codeOf maps the statuses that echo and the request validator produce back
// to a code, for errors that did not start as an *Error.
var codeOf = func() map[int]Code {
	m := make(map[int]Code, len(statusOf))
	for c, s := range statusOf {
		m[s] = c
	}
	return m
}()

// Error is the one error type handlers return. Message is shown to the
// client; Err is for the operator's log only and never leaves the server.
type Error struct {
	Code    Code
	Message string
	Err     error
	// RetryAfter, when positive, is sent as the Retry-After header (429).
	RetryAfter time.Duration
	// status, when set, is the HTTP status, for a status that no code
	// names (a host's 422, say): it is kept rather than turned into 500.
	status int
}

// Errorf returns an *Error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Status returns the HTTP status for the error's code.
func (e *Error) Status() int {
	if e.status != 0 {
		return e.status
	}
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// The messages Teable's server uses, which its clients may match on.
var (
	errInvalidSecret       = Errorf(CodeValidation, "Invalid secret")
	errInvalidAuthCode     = Errorf(CodeValidation, "Invalid auth code")
	errInvalidRefreshToken = Errorf(CodeValidation, "Invalid refresh token")
	// errAuthCodeReplayed and errRefreshTokenReused answer exactly as an
	// invalid code or token does (a thief learns nothing), but are their
	// own values so that the log can tell them apart.
	errAuthCodeReplayed    = Errorf(CodeValidation, "Invalid auth code")
	errRefreshTokenReused  = Errorf(CodeValidation, "Invalid refresh token")
	errPluginNotFound      = Errorf(CodeNotFound, "Plugin not found")
	errMissingBearer       = Errorf(CodeUnauthorized, "A valid admin bearer token is required")
	errInternal            = Errorf(CodeInternal, "Internal server error")
	errMethodNotAllowedMsg = "Method not allowed"
	errBodyTooLarge        = Errorf(CodeTooLarge, "Request body is larger than %d bytes", maxBodyBytes)
	errNotJSON             = Errorf(CodeUnsupportedMedia, "Content-Type must be application/json")
	errNotImplemented      = Errorf(CodeNotImplemented, "This operation is not implemented yet")
)

// reasons name, for the request log line, why a request was refused where
// the status alone does not say (several refusals share 400). Never a
// credential.
var reasons = map[*Error]string{
	errInvalidSecret:       "invalid_secret",
	errInvalidAuthCode:     "invalid_auth_code",
	errAuthCodeReplayed:    "auth_code_replay",
	errInvalidRefreshToken: "invalid_refresh_token",
	errRefreshTokenReused:  "refresh_token_reuse",
	errPluginNotFound:      "plugin_not_found",
	errMissingBearer:       "admin_bearer_refused",
}

// reasonOf is the log reason of an answered error: its entry in reasons,
// else its code.
func reasonOf(e *Error) string {
	if r, ok := reasons[e]; ok {
		return r
	}
	if e.Code == CodeTooManyRequests {
		return "rate_limited"
	}
	return string(e.Code)
}

// contextKeyReason is where writeError leaves the reason for the log line.
const contextKeyReason = "plugintoken.reason"

// maxBodyBytes bounds every request body: the largest real request is a few
// hundred bytes.
const maxBodyBytes = 64 << 10

// tooManyFailures is the answer once a key has no attempts left.
func tooManyFailures(wait time.Duration) *Error {
	return &Error{Code: CodeTooManyRequests, Message: "Too many failed attempts; retry later", RetryAfter: wait}
}

// asError turns any error into the *Error to answer with. Errors that are
// neither an *Error nor an echo.HTTPError are internal: the client gets a
// bare 500 and the detail goes to the log.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	// The body limit's error may come back wrapped by the request
	// validator, which read the body.
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return errBodyTooLarge
	}
	if errors.Is(err, gen.ErrNotImplemented) {
		return errNotImplemented
	}
	// A storage engine out of reach is the operator's problem, and the
	// client may retry: 503, not 500.
	if errors.Is(err, store.ErrUnavailable) {
		return &Error{Code: CodeServiceUnavailable, Message: "Storage unavailable; retry later", Err: err, RetryAfter: time.Second}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		// A nested *Error (for instance from the authenticator, carried
		// through the request validator) says more than the status.
		if errors.As(he.Internal, &e) {
			return e
		}
		code, ok := codeOf[he.Code]
		status := 0
		if !ok {
			// A status no code names (from the host's authenticator or
			// middleware) keeps its status, with the nearest code.
			code, status = CodeInternal, he.Code
			if he.Code >= 400 && he.Code < 500 {
				code = CodeValidation
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
		case CodeInternal:
			msg = errInternal.Message // the detail stays in the log
		case CodeMethodNotAllowed:
			msg = errMethodNotAllowedMsg
		}
		return &Error{Code: code, Message: msg, Err: he, status: status}
	}
	return &Error{Code: CodeInternal, Message: errInternal.Message, Err: err}
}

// writeError answers the request with err in Teable's error body. It is the
// only place that turns errors into HTTP responses.
func writeError(c echo.Context, log *slog.Logger, err error) {
	e := asError(err)
	status := e.Status()
	c.Set(contextKeyReason, reasonOf(e))
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
func writeErrorHTTP(w http.ResponseWriter, e *Error) {
	status := e.Status()
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(gen.Error{Message: e.Message, Status: status, Code: string(e.Code)})
}

package core

import (
	"fmt"
	"time"
)

// Code is one of Teable's error codes, the `code` of its error body.
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

// statusOf is the one table from error code to the status of Teable's
// error body (and of the HTTP answer that carries it).
var statusOf = map[Code]int{
	CodeValidation:         400,
	CodeUnauthorized:       401,
	CodeRestricted:         403,
	CodeNotFound:           404,
	CodeMethodNotAllowed:   405,
	CodeTooLarge:           413,
	CodeUnsupportedMedia:   415,
	CodeTooManyRequests:    429,
	CodeInternal:           500,
	CodeServiceUnavailable: 503,
	CodeNotImplemented:     501,
}

// Status returns the status of the code (500 for a code not in the table).
func (c Code) Status() int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return 500
}

// CodeOf returns the code of a status, when one has it.
func CodeOf(status int) (Code, bool) {
	for c, s := range statusOf {
		if s == status {
			return c, true
		}
	}
	return "", false
}

// Error is the one error type of the service and its adapters. Message is
// shown to the client; Err is for the operator's log only and never leaves
// the process.
type Error struct {
	Code    Code
	Message string
	// Reason names, for the log, why a request was refused where the code
	// alone does not say (several refusals share validation_error): a
	// replayed code answers as an invalid one does, but logs
	// "auth_code_replay". Never a credential. Default: the code.
	Reason string
	Err    error
	// RetryAfter, when positive, is how long the client should wait
	// (Retry-After).
	RetryAfter time.Duration
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

// Status returns the status of the error's code.
func (e *Error) Status() int { return e.Code.Status() }

// LogReason is Reason, or else the code.
func (e *Error) LogReason() string {
	if e.Reason != "" {
		return e.Reason
	}
	return string(e.Code)
}

// reasoned is an *Error with a log reason.
func reasoned(reason string, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Reason: reason}
}

// The refusals of the service, with the messages Teable's server uses,
// which its clients may match on.
var (
	errInvalidSecret       = reasoned("invalid_secret", CodeValidation, "Invalid secret")
	errInvalidAuthCode     = reasoned("invalid_auth_code", CodeValidation, "Invalid auth code")
	errInvalidRefreshToken = reasoned("invalid_refresh_token", CodeValidation, "Invalid refresh token")
	// errAuthCodeReplayed and errRefreshTokenReused answer exactly as an
	// invalid code or token does (a thief learns nothing), but log their
	// own reason.
	errAuthCodeReplayed   = reasoned("auth_code_replay", CodeValidation, "Invalid auth code")
	errRefreshTokenReused = reasoned("refresh_token_reuse", CodeValidation, "Invalid refresh token")
	errPluginNotFound     = reasoned("plugin_not_found", CodeNotFound, "Plugin not found")
	// ErrInvalidAccessToken is Authenticate's refusal of anything but a
	// live access token.
	ErrInvalidAccessToken = Errorf(CodeUnauthorized, "A valid plugin access token is required")
)

// tooManyFailures is the answer once a key has no attempts left.
func tooManyFailures(wait time.Duration) *Error {
	return &Error{Code: CodeTooManyRequests, Reason: "rate_limited", Message: "Too many failed attempts; retry later", RetryAfter: wait}
}

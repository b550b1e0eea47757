package server

// Decoding request bodies whatever the host's Binder.

import (
	"encoding/json"

	"github.com/labstack/echo/v4"

	"github.com/plugintoken/plugintoken/server/core"
)

// ownBinding makes the generated handlers decode request bodies with
// plugintoken's own decoder, whatever Binder (or Validator) the host
// application configured: a host binder that refuses unknown fields would
// refuse Teable's real requests (they carry a plugin's logo), and a host's
// statuses would reach plugintoken's error mapping. The body was already
// validated against the document, and what is bound is the value the
// validator checked (see bindValidated).
func ownBinding(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error { return next(&boundContext{c}) }
}

type boundContext struct{ echo.Context }

// Bind fills v from the body the validator decoded and checked; unknown
// fields are ignored. A body the validator left alone (an operation whose
// body is optional, sent without one) is decoded as JSON.
func (c *boundContext) Bind(v any) error {
	var err error
	if vb, ok := c.Request().Body.(interface{ ValidatedValue() any }); ok {
		err = bindValidated(v, vb.ValidatedValue())
	} else {
		err = json.NewDecoder(c.Request().Body).Decode(v)
	}
	if err != nil {
		return &core.Error{Code: core.CodeValidation, Message: "Request body does not decode", Err: err}
	}
	return nil
}

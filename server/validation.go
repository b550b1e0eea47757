package server

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// scopeField is a scope in a request body: scopes.0, scopes.1, ...
var scopeField = regexp.MustCompile(`^scopes\.[0-9]+$`)

// missingProperty finds the property a "required" failure names.
var missingProperty = regexp.MustCompile(`property "([^"]+)" is missing`)

// validationMessage says what the request validator refused, in the terms
// of the request ("name: must not be empty") rather than the library's
// ("request body has an error: doesn't match schema #/components/schemas/
// CreatePluginRequest: Error at "/name": minimum string length is 1"). It
// never repeats the value sent (it may be a secret), nor lists an enum.
func validationMessage(re *openapi3filter.RequestError) string {
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		field := strings.Join(se.JSONPointer(), ".")
		if re.Parameter != nil {
			field = strings.TrimSuffix(re.Parameter.Name+"."+field, ".")
		}
		return fieldMessage(field, se)
	}
	if re.Parameter != nil {
		return fmt.Sprintf("%s: %s", re.Parameter.Name, plainReason(re.Reason, re.Err))
	}
	if re.RequestBody != nil && errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return "request body is required"
	}
	if re.RequestBody != nil {
		return "request body: " + plainReason(re.Reason, re.Err)
	}
	return plainReason(re.Reason, re.Err)
}

func fieldMessage(field string, se *openapi3.SchemaError) string {
	prefix := func(f string) string {
		if f == "" {
			return "request body: "
		}
		return f + ": "
	}
	s := se.Schema
	switch se.SchemaField {
	case "required":
		if m := missingProperty.FindStringSubmatch(se.Reason); m != nil && field != m[1] && !strings.HasSuffix(field, "."+m[1]) {
			field = strings.TrimPrefix(field+"."+m[1], ".")
		}
		return prefix(field) + "is required"
	case "minLength":
		if s != nil && s.MinLength == 1 {
			return prefix(field) + "must not be empty"
		}
		if s != nil {
			return prefix(field) + fmt.Sprintf("must be at least %d characters", s.MinLength)
		}
	case "maxLength":
		if s != nil && s.MaxLength != nil {
			return prefix(field) + fmt.Sprintf("must be at most %d characters", *s.MaxLength)
		}
	case "type":
		if s != nil && s.Type != nil && len(s.Type.Slice()) > 0 {
			return prefix(field) + "must be " + article(s.Type.Slice()[0])
		}
	case "nullable":
		return prefix(field) + "must not be null"
	case "enum":
		// A scope outside the document's enum is answered as the service
		// answers a scope outside its vocabulary (they are the same list):
		// the scope named, not every allowed value listed. A scope is no
		// secret; other values are never repeated.
		v, isString := se.Value.(string)
		if s != nil && s.Type != nil && s.Type.Is("string") && !isString {
			return prefix(field) + "must be a string" // the enum is checked before the type
		}
		if isString && scopeField.MatchString(field) {
			return fmt.Sprintf("Scope %q is not a plugin scope", v)
		}
		return prefix(field) + "is not one of the allowed values"
	case "pattern":
		return prefix(field) + "has an invalid format"
	case "minItems":
		if s != nil {
			return prefix(field) + fmt.Sprintf("must have at least %d item(s)", s.MinItems)
		}
	case "maxItems":
		if s != nil && s.MaxItems != nil {
			return prefix(field) + fmt.Sprintf("must have at most %d item(s)", *s.MaxItems)
		}
	}
	return prefix(field) + se.Reason
}

func article(typ string) string {
	switch typ {
	case "array", "integer", "object":
		return "an " + typ
	}
	return "a " + typ
}

// plainReason is a library reason without its nested detail.
func plainReason(reason string, err error) string {
	if reason != "" {
		return reason
	}
	if err != nil {
		return strings.SplitN(err.Error(), "\n", 2)[0]
	}
	return "invalid request"
}

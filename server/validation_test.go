package server_test

import (
	"net/http"
	"testing"
)

// TestValidationMessages: what the validator refuses is said in the
// request's terms, with the status and code unchanged, and never with the
// library's internals, the value sent or a list of allowed values.
func TestValidationMessages(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin()
	admin := []string{"Authorization", "Bearer " + adminToken}
	for name, tc := range map[string]struct {
		method, path, body string
		header             []string
		msg                string
	}{
		"EmptyName":       {"POST", "/api/plugin", `{"name":""}`, admin, "name: must not be empty"},
		"MissingName":     {"POST", "/api/plugin", `{}`, admin, "name: is required"},
		"NameNotString":   {"POST", "/api/plugin", `{"name":5}`, admin, "name: must be a string"},
		"ScopesNotArray":  {"POST", "/api/plugin", `{"name":"x","scopes":"table|read"}`, admin, "scopes: must be an array"},
		"MissingSecret":   {"POST", "/api/plugin/" + p.ID + "/token", `{"baseId":"b","scopes":["table|read"],"authCode":"c"}`, nil, "secret: is required"},
		"EmptyBase":       {"POST", "/api/plugin/" + p.ID + "/authCode", `{"baseId":""}`, admin, "baseId: must not be empty"},
		"MissingBody":     {"POST", "/api/plugin", ``, admin, "request body is required"},
		"ScopeItemNumber": {"POST", "/api/plugin/" + p.ID + "/token", `{"baseId":"b","secret":"s","scopes":[1],"authCode":"c"}`, nil, "scopes.0: must be a string"},
	} {
		t.Run(name, func(t *testing.T) {
			ct := "application/json"
			if tc.body == "" {
				ct = ""
			}
			res, body := h.do(tc.method, tc.path, ct, tc.body, tc.header...)
			checkError(t, res.StatusCode, body, http.StatusBadRequest, "validation_error", tc.msg)
		})
	}
}

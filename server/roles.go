package server

// Who calls each route, as the overlaid document declares it.

import (
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// routeRole is who calls a route: the operation's x-plugintoken-role in the
// overlaid document, declared once next to the operation (openapi/overlay.yaml).
type routeRole string

const (
	// rolePlugin: a plugin's backend.
	rolePlugin routeRole = "plugin"
	// roleAdmin: an admin, authenticated by Config.Admin; a write, audited
	// with its subject.
	roleAdmin routeRole = "admin"
	// roleAdminRead: an admin's read; its handler needs no caller.
	roleAdminRead routeRole = "admin-read"
	// roleBackup: the backup, an admin route mounted apart.
	roleBackup routeRole = "backup"
	// roleUnimplemented: an upstream operation with no role, which
	// plugintoken does not implement (it answers 501), mounted with the
	// plugin routes.
	roleUnimplemented routeRole = ""
)

// roleExtension is the overlay's name for an operation's role.
const roleExtension = "x-plugintoken-role"

// roleOf returns the role the document declares for op. An operation with
// none is one that upstream added and plugintoken does not implement: it is
// mounted with the plugin routes, where it answers 501, and gets no caller
// (TestEveryOperationHasARole holds every implemented operation to a
// role). A role this build does not know is an error: a route is never
// mounted, nor given the caller, by a guess.
func roleOf(op *openapi3.Operation) (routeRole, error) {
	v, declared := op.Extensions[roleExtension]
	if !declared {
		return roleUnimplemented, nil
	}
	s, _ := v.(string)
	switch r := routeRole(s); r {
	case rolePlugin, roleAdmin, roleAdminRead, roleBackup:
		return r, nil
	}
	return "", fmt.Errorf("server: operation %s has %s %v: it must be plugin, admin, admin-read or backup (openapi/overlay.yaml)", op.OperationID, roleExtension, v)
}

// needsCaller tells the operations whose handlers get the caller
// (core.Caller): the credential checks (rate-limited per client address),
// the revocation (where the bearer is optional), the admin writes (audited
// with the subject) and the backup; not an admin's reads, nor what
// answers 501.
func needsCaller(r routeRole) bool { return r != roleAdminRead && r != roleUnimplemented }

// callerOps maps the generated handlers' operation ids (getPluginToken's is
// GetPluginToken) to whether they get the caller, from the document's roles.
func callerOps(spec *openapi3.T) (map[string]bool, error) {
	out := map[string]bool{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			r, err := roleOf(op)
			if err != nil {
				return nil, err
			}
			id := op.OperationID
			if id != "" {
				id = strings.ToUpper(id[:1]) + id[1:]
			}
			out[id] = needsCaller(r)
		}
	}
	return out, nil
}

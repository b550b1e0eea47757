package core_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoFrameworkImports: the core knows nothing of HTTP, Echo, the
// generated API, its validator or a metrics library, neither directly nor
// through anything it imports: it tells a core.Observer, and package
// server keeps the Prometheus series.
func TestNoFrameworkImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \"\\n\"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		if imp == "net/http" || strings.HasPrefix(imp, "net/http/") || strings.HasPrefix(imp, "github.com/prometheus/") {
			t.Errorf("package core imports %s", imp)
		}
	}
	deps, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, deps)
	}
	for _, dep := range strings.Fields(string(deps)) {
		for _, banned := range []string{"github.com/labstack/echo", "github.com/getkin/kin-openapi", "github.com/plugintoken/plugintoken/gen", "github.com/oapi-codegen", "github.com/plugintoken/plugintoken/server", "github.com/prometheus/"} {
			if strings.HasPrefix(dep, banned) && dep != "github.com/plugintoken/plugintoken/server/core" {
				t.Errorf("package core depends on %s", dep)
			}
		}
	}
}

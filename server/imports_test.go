package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerUsesCoreOnly: the HTTP adapter reaches the store only through
// the core (core.ErrUnavailable, Service.Size, Service.Backup,
// Service.Ping): no file of package server imports a store package. The
// core's own rules are server/core's TestNoFrameworkImports.
func TestServerUsesCoreOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \"\\n\"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		if imp == "github.com/plugintoken/plugintoken/store" || strings.HasPrefix(imp, "github.com/plugintoken/plugintoken/store/") {
			t.Errorf("package server imports %s: use what package core offers (or add it there)", imp)
		}
	}
}

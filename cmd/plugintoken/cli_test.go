package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
)

// cli runs an admin command against the server at url and returns its exit
// code and outputs.
func cli(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	env := func(k string) string {
		switch k {
		case "PLUGINTOKEN_ADMIN_TOKEN":
			return processAdmin
		case "PLUGINTOKEN_SERVER":
			return url
		}
		return ""
	}
	var stdout, stderr bytes.Buffer
	code := runAdmin(context.Background(), args[0], args[1:], env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// startMain starts a Main on a fresh database with the test admin token,
// and stops it when the test ends.
func startMain(t *testing.T) *Main {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DBPath = filepath.Join(t.TempDir(), "plugintoken.db")
	cfg.AdminTokenFile = filepath.Join(t.TempDir(), "absent")
	cfg.AdminTokens = []string{processAdmin}
	m := NewMain(cfg, &lockedBuffer{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestAdminCLI(t *testing.T) {
	m := startMain(t)
	url := "http://" + m.Addr()

	// plugin create, readable and --json.
	code, out, errOut := cli(t, url, "plugin", "create", "--name", "Chart", "--scope", "table|read", "--scope", "record|read")
	if code != 0 || !strings.Contains(out, "plugin created") || !strings.Contains(out, "table|read, record|read") || !strings.Contains(out, "shown only now") {
		t.Fatalf("plugin create: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, url, "plugin", "create", "--json", "--name", "Other")
	var p gen.PluginWithSecret
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.ID == "" || p.Secret == "" {
		t.Fatalf("plugin create --json: %d %q", code, out)
	}

	// plugin get: masked secret; flags after the argument work too.
	code, out, _ = cli(t, url, "plugin", "get", p.ID)
	if code != 0 || !strings.Contains(out, p.ID) || !strings.Contains(out, "****") || strings.Contains(out, p.Secret) {
		t.Errorf("plugin get: %d\n%s", code, out)
	}
	if code, out, _ = cli(t, url, "plugin", "get", p.ID, "--json"); code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("plugin get ID --json: %d %q", code, out)
	}

	// code issue, then an exchange through the API, then the token commands.
	code, out, _ = cli(t, url, "code", "issue", "--json", "--plugin", p.ID, "--base", "bse1")
	var ac gen.AuthCode
	if code != 0 || json.Unmarshal([]byte(out), &ac) != nil || ac.Code == "" {
		t.Fatalf("code issue: %d %q", code, out)
	}
	if code, out, _ = cli(t, url, "code", "issue", "--plugin", p.ID, "--base", "bse1"); code != 0 || !strings.Contains(out, "expires in:  5m0s") {
		t.Errorf("code issue: %d %q", code, out)
	}
	c, _ := gen.NewClientWithResponses(url + "/api")
	tok, err := c.PostPluginTokenWithResponse(context.Background(), p.ID,
		gen.PluginTokenRequest{BaseID: "bse1", Secret: p.Secret, AuthCode: ac.Code, Scopes: []string{"table|read"}})
	if err != nil || tok.JSON200 == nil {
		t.Fatalf("exchange: %v", err)
	}
	code, out, _ = cli(t, url, "token", "introspect", tok.JSON200.AccessToken)
	if code != 0 || !strings.Contains(out, "active") || !strings.Contains(out, "plugin:") || !strings.Contains(out, "table|read") {
		t.Errorf("token introspect: %d\n%s", code, out)
	}
	if code, out, _ = cli(t, url, "token", "revoke", tok.JSON200.RefreshToken); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token revoke: %d %q", code, out)
	}
	if code, out, _ = cli(t, url, "token", "introspect", "--json", tok.JSON200.AccessToken); code != exitInactive || strings.TrimSpace(out) != `{"active":false}` {
		t.Errorf("introspect after revoke: %d %q", code, out)
	}

	// regenerate-secret, delete, and the error once it is gone.
	if code, out, _ = cli(t, url, "plugin", "regenerate-secret", p.ID); code != 0 || !strings.Contains(out, "secret regenerated") {
		t.Errorf("regenerate-secret: %d %q", code, out)
	}
	if code, out, _ = cli(t, url, "plugin", "delete", p.ID); code != 0 || !strings.Contains(out, "deleted") {
		t.Errorf("delete: %d %q", code, out)
	}
	code, out, errOut = cli(t, url, "plugin", "get", p.ID)
	if code != 1 || out != "" || !strings.Contains(errOut, "Plugin not found (404 not_found)") {
		t.Errorf("get a deleted plugin: %d %q %q", code, out, errOut)
	}

	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"plugin", "get"}, 2, "want 1 argument"},
			{[]string{"plugin", "create"}, 2, "--name is required"},
			{[]string{"plugin", "nope"}, 2, `unknown command "nope"`},
			{[]string{"plugin", "get", "--nope", "x"}, 2, "flag provided but not defined"},
			{[]string{"token", "introspect", "--server", "http://127.0.0.1:1", "x"}, 1, "connect"},
		} {
			code, _, errOut := cli(t, url, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
			}
		}
	})
	t.Run("HelpEverywhere", func(t *testing.T) {
		for _, c := range adminCommands {
			code, out, _ := cli(t, url, c.group, c.verb, "--help")
			if code != 0 || !strings.Contains(out, "Usage: plugintoken "+c.group+" "+c.verb) || !strings.Contains(out, "Examples:") {
				t.Errorf("%s %s --help: %d %q", c.group, c.verb, code, out)
			}
		}
		for _, g := range []string{"plugin", "code", "token"} {
			if code, out, _ := cli(t, url, g, "--help"); code != 0 || !strings.Contains(out, "Commands:") {
				t.Errorf("%s --help: %d %q", g, code, out)
			}
		}
	})
}

// runMain runs the binary's run (all subcommands) with the environment
// variables of env set for the test.
func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestCLIConventions: every subcommand follows one convention (help to
// stdout with exit 0, usage errors to stderr with exit 2, the same error
// line), and what a newcomer types first works.
func TestCLIConventions(t *testing.T) {
	m := startMain(t)
	env := map[string]string{"PLUGINTOKEN_ADMIN_TOKEN": processAdmin, "PLUGINTOKEN_SERVER": ""}

	t.Run("HelpToStdout", func(t *testing.T) {
		for _, args := range [][]string{
			{"serve", "--help"}, {"backup", "--help"}, {"restore", "--help"}, {"version", "--help"},
			{"plugin", "--help"}, {"plugin", "create", "--help"}, {"token", "introspect", "--help"}, {"--help"},
		} {
			code, out, errOut := runMain(t, env, args...)
			if code != 0 || !strings.Contains(out, "Usage") || errOut != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
			if len(args) > 1 && args[0] != "plugin" || len(args) > 2 {
				if !strings.Contains(out, "Examples:") {
					t.Errorf("%v: no example:\n%s", args, out)
				}
			}
		}
	})
	t.Run("UsageErrorsExit2", func(t *testing.T) {
		for _, args := range [][]string{
			{}, {"plugin"}, {"backup"}, {"backup", "--nope"}, {"restore"}, {"plugin", "get", ""},
			{"plugin", "get", "a", "b"}, {"serve", "--nope"}, {"version", "x"}, {"token", "introspect", "--server", "ftp://x", "t"},
		} {
			code, out, errOut := runMain(t, env, args...)
			if code != 2 || out != "" || errOut == "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and the error on stderr", args, code, out, errOut)
			}
		}
		// Bare plugintoken and a bare group print their usage the same way.
		_, _, bare := runMain(t, env)
		_, _, group := runMain(t, env, "plugin")
		if !strings.HasPrefix(bare, "plugintoken issues") || !strings.HasPrefix(group, "Usage: plugintoken plugin") {
			t.Errorf("bare usages: %q / %q", bare, group)
		}
		_, _, errOut := runMain(t, env, "plugin", "get", "")
		if !strings.Contains(errOut, "plugintoken plugin get: PLUGIN_ID must not be empty (see 'plugintoken plugin get --help')") {
			t.Errorf("empty plugin id: %q", errOut)
		}
	})
	t.Run("ServerForms", func(t *testing.T) {
		addr := m.Addr()
		for _, server := range []string{addr, "http://" + addr, "http://" + addr + "/", "http://" + addr + "/api", "http://" + addr + "/api/"} {
			code, out, errOut := runMain(t, env, "plugin", "create", "--server", server, "--name", "x", "--json")
			if code != 0 || !strings.Contains(out, `"secret"`) {
				t.Errorf("--server %s: exit %d %s %s", server, code, out, errOut)
			}
		}
	})
	t.Run("RefusedConnectionSaysWhere", func(t *testing.T) {
		code, _, errOut := runMain(t, env, "token", "introspect", "--server", "127.0.0.1:1", "pta_x")
		if code != 1 || !strings.Contains(errOut, "http://127.0.0.1:1") || !strings.Contains(errOut, "--server") {
			t.Errorf("refused: exit %d %q", code, errOut)
		}
	})
	t.Run("IntrospectInactiveExits3", func(t *testing.T) {
		code, out, _ := runMain(t, env, "token", "introspect", "--server", m.Addr(), "pta_unknown")
		if code != exitInactive || !strings.Contains(out, "inactive") {
			t.Errorf("inactive token: exit %d %q", code, out)
		}
	})
	t.Run("BackupToFolderWithJSON", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "backups") + "/"
		code, out, errOut := runMain(t, env, "backup", "--server", m.Addr(), "--out", dir, "--json")
		var ans struct {
			File  string
			Bytes int64
		}
		if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || !strings.HasPrefix(ans.File, dir) || ans.Bytes <= 0 {
			t.Errorf("backup --out DIR/ --json: exit %d %q %q", code, out, errOut)
		}
	})
}

// TestHelpExamplesPaste pastes every example of every --help into bash
// (with plugintoken a function that prints its arguments): each must parse
// and run, and keep every scope one argument (an unquoted | is a pipe).
func TestHelpExamplesPaste(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var examples []string
	for _, c := range adminCommands {
		examples = append(examples, c.examples...)
	}
	examples = append(examples, serveExamples...)
	examples = append(examples, backupExamples...)
	examples = append(examples, restoreExamples...)
	for _, e := range examples {
		out, err := exec.Command(bash, "-c", `plugintoken() { printf '<%s>\n' "$@"; }; `+e).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v %s", e, err, out)
			continue
		}
		if strings.Contains(e, "--scope") && !strings.Contains(string(out), "<table|read>") {
			t.Errorf("%s: the scope did not reach plugintoken as one argument:\n%s", e, out)
		}
	}
}

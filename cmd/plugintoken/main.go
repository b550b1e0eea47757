// Command plugintoken runs the plugin token service, and is a client of a
// running one.
//
//	plugintoken serve [flags]         run the HTTP service (flags.go, service.go)
//	plugintoken plugin|code|token ... admin commands (cli.go)
//	plugintoken backup --out FILE     fetch a hot backup from a running server
//	plugintoken restore --from FILE   put a backup in place (backup.go)
//	plugintoken version               print the version
//
// main is thin: flags and environment become a Config (flags.go), and Main
// (service.go) does the wiring, so that end-to-end tests run exactly what
// the binary runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `plugintoken issues and manages the tokens of Teable plugins.

Usage:
  plugintoken serve [flags]          run the HTTP service
  plugintoken plugin <command>       create, get, delete a plugin, regenerate its secret
  plugintoken code issue             issue an auth code
  plugintoken token <command>        introspect or revoke a token
  plugintoken backup --out FILE      fetch a hot backup from a running server
  plugintoken restore --from FILE    put a backup in place of a stopped server's database
  plugintoken version                print the version

The admin commands and backup talk to a running server (--server,
PLUGINTOKEN_SERVER, default 127.0.0.1:8080) with the admin token of
PLUGINTOKEN_ADMIN_TOKEN or of the admin token file (default
./data/admin-token). Every command has --help (with examples) and --json.
Exit status: 0 done, 1 failed, 2 usage error, 3 token introspect found the
token inactive.

Every serve flag can also be set with the environment variable
PLUGINTOKEN_<FLAG> (upper case, '-' as '_'), for example
PLUGINTOKEN_AUTH_CODE_TTL=2m; a flag on the command line wins.
`

const serveSummary = `run the HTTP service: the API under /api, its reference page at /docs,
/healthz, /readyz and /metrics. Admin bearer tokens come from
PLUGINTOKEN_ADMIN_TOKEN (comma-separated) and/or the admin token file; with
neither, one is generated into the file on first start. Every flag can also
be set as PLUGINTOKEN_<FLAG> (upper case, '-' as '_')`

var serveExamples = []string{
	"plugintoken serve",
	"plugintoken serve --addr 127.0.0.1:9090 --db /var/lib/plugintoken/plugintoken.db",
	"PLUGINTOKEN_ADDR=127.0.0.1:9090 PLUGINTOKEN_AUTH_CODE_TTL=2m plugintoken serve",
	"plugintoken serve --etcd-endpoints 127.0.0.1:2379",
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		tuneGC(os.Getenv)
		cfg, err := parseServeFlags(args[1:], os.Getenv, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			return fail(stderr, "plugintoken serve", usageError("%v", err))
		}
		m := NewMain(cfg, stderr)
		if err := m.Run(ctx); err != nil {
			return fail(stderr, "plugintoken serve", err)
		}
		return 0
	case "backup":
		return runBackup(ctx, args[1:], os.Getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], os.Getenv, stdout, stderr)
	case "plugin", "code", "token":
		return runAdmin(ctx, args[0], args[1:], os.Getenv, stdout, stderr)
	case "version", "-version", "--version":
		if len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help") {
			fmt.Fprint(stdout, "Usage: plugintoken version\n\nprint the version of this build.\n\nExamples:\n  plugintoken version\n")
			return 0
		}
		if len(args) > 1 {
			return fail(stderr, "plugintoken version", usageError("unexpected argument %q", args[1]))
		}
		fmt.Fprintln(stdout, "plugintoken", buildVersion())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "plugintoken: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// tuneGC trades memory the service has to spare for CPU: the live heap is a
// few MiB, so collecting at 3x it (GOGC=200) instead of 2x makes the
// collector's share of a request small, while a soft limit keeps the heap
// well under 100 MiB. (GOGC=400 was no faster in make bench once requests
// allocated less, and held 10 MiB more, in the runs of 2026-11-27.) GOGC and
// GOMEMLIMIT in the environment win.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(64 << 20)
	}
}

// buildVersion is the -ldflags version, else the module version Go recorded.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

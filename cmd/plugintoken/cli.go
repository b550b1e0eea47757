package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/plugintoken/plugintoken/gen"
)

// The admin commands talk to a running server through the generated
// client. Every subcommand of the binary follows one convention:
//
//   - --help prints the usage, with examples that paste and run as shown,
//     to stdout and exits 0;
//   - a usage error prints "plugintoken <command>: <what is wrong>" and a
//     pointer to --help to stderr and exits 2;
//   - any other error prints "plugintoken <command>: <what went wrong>" to
//     stderr and exits 1;
//   - --json prints the server's JSON answer instead of the readable one.
//
// `token introspect` exits 3 for a token that is not active, as grep exits
// 1 for no match, so that scripts can tell.

// exitInactive is token introspect's exit code for an inactive token.
const exitInactive = 3

// command is one `plugintoken <group> <verb>` admin command.
type command struct {
	group, verb string
	args        string // positional arguments, for the usage line
	summary     string
	examples    []string
	nargs       int
	// flags declares the command's own flags on fs and returns the
	// function that runs the command with their values.
	flags func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error)

// answer is a command's result: the server's JSON, a readable rendering,
// and the exit code (0 unless the command says otherwise).
type answer struct {
	json     []byte
	readable func(w io.Writer)
	exit     int
}

// scopeList is a repeatable --scope flag.
type scopeList []string

func (s *scopeList) String() string     { return strings.Join(*s, ",") }
func (s *scopeList) Set(v string) error { *s = append(*s, v); return nil }

var adminCommands = []command{
	{group: "plugin", verb: "create", summary: "register a plugin; prints its secret, once",
		examples: []string{
			"plugintoken plugin create --name Chart --scope 'table|read' --scope 'record|read'",
			"plugintoken plugin create --name Chart --json",
		},
		flags: pluginCreate},
	{group: "plugin", verb: "get", args: "PLUGIN_ID", nargs: 1, summary: "show a plugin (its secret masked)",
		examples: []string{"plugintoken plugin get pluXXXXXXXXXXXXXXXX"}, flags: pluginGet},
	{group: "plugin", verb: "delete", args: "PLUGIN_ID", nargs: 1, summary: "delete a plugin; its codes and tokens stop working",
		examples: []string{"plugintoken plugin delete pluXXXXXXXXXXXXXXXX"}, flags: pluginDelete},
	{group: "plugin", verb: "regenerate-secret", args: "PLUGIN_ID", nargs: 1, summary: "give a plugin a new secret; the old one fails at once",
		examples: []string{"plugintoken plugin regenerate-secret pluXXXXXXXXXXXXXXXX"}, flags: pluginRegenerateSecret},
	{group: "code", verb: "issue", summary: "issue a single-use auth code for a plugin in a base",
		examples: []string{"plugintoken code issue --plugin pluXXXXXXXXXXXXXXXX --base bseXXXXXXXXXXXXXXXX"}, flags: codeIssue},
	{group: "token", verb: "introspect", args: "TOKEN", nargs: 1,
		summary:  "tell whether a token is active and what it grants (exit 3 when it is not active)",
		examples: []string{"plugintoken token introspect pta_...", "plugintoken token introspect ptr_... --json"}, flags: tokenIntrospect},
	{group: "token", verb: "revoke", args: "TOKEN", nargs: 1,
		summary:  "revoke a token (a refresh token revokes every token of its family)",
		examples: []string{"plugintoken token revoke ptr_..."}, flags: tokenRevoke},
}

func pluginCreate(fs *flag.FlagSet) runFunc {
	name := fs.String("name", "", "the plugin's name (required)")
	var scopes scopeList
	fs.Var(&scopes, "scope", "a scope the plugin may be granted; repeat it; quote it in a shell, the | is a pipe\n(default: the whole vocabulary)")
	return func(ctx context.Context, c *gen.ClientWithResponses, _ []string) (answer, error) {
		if *name == "" {
			return answer{}, usageError("--name is required")
		}
		req := gen.CreatePluginRequest{Name: *name}
		if len(scopes) > 0 {
			s := []string(scopes)
			req.Scopes = &s
		}
		res, err := c.CreatePluginWithResponse(ctx, req)
		if err != nil {
			return answer{}, err
		}
		if res.JSON201 == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		p := res.JSON201
		return answer{json: res.Body, readable: func(w io.Writer) {
			printFields(w, "plugin created",
				"id", p.ID, "name", p.Name, "secret", p.Secret+"   (shown only now: store it)", "scopes", strings.Join(p.Scopes, ", "))
		}}, nil
	}
}

func pluginGet(*flag.FlagSet) runFunc {
	return func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error) {
		res, err := c.GetPluginWithResponse(ctx, args[0])
		if err != nil {
			return answer{}, err
		}
		if res.JSON200 == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		p := res.JSON200
		return answer{json: res.Body, readable: func(w io.Writer) {
			printFields(w, "", "id", p.ID, "name", p.Name, "secret", p.Secret, "scopes", strings.Join(p.Scopes, ", "))
		}}, nil
	}
}

func pluginDelete(*flag.FlagSet) runFunc {
	return func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error) {
		res, err := c.DeletePluginWithResponse(ctx, args[0])
		if err != nil {
			return answer{}, err
		}
		if res.StatusCode() != http.StatusNoContent {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		return answer{json: []byte(`{"deleted":true}`), readable: func(w io.Writer) { fmt.Fprintf(w, "plugin %s deleted\n", args[0]) }}, nil
	}
}

func pluginRegenerateSecret(*flag.FlagSet) runFunc {
	return func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error) {
		res, err := c.RegeneratePluginSecretWithResponse(ctx, args[0])
		if err != nil {
			return answer{}, err
		}
		if res.JSON200 == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		return answer{json: res.Body, readable: func(w io.Writer) {
			printFields(w, "secret regenerated", "id", res.JSON200.ID, "secret", res.JSON200.Secret+"   (shown only now: store it)")
		}}, nil
	}
}

func codeIssue(fs *flag.FlagSet) runFunc {
	plugin := fs.String("plugin", "", "plugin id (required)")
	base := fs.String("base", "", "base id (required)")
	return func(ctx context.Context, c *gen.ClientWithResponses, _ []string) (answer, error) {
		if *plugin == "" || *base == "" {
			return answer{}, usageError("--plugin and --base are required")
		}
		res, err := c.CreateAuthCodeWithResponse(ctx, *plugin, gen.AuthCodeRequest{BaseID: *base})
		if err != nil {
			return answer{}, err
		}
		if res.JSON200 == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		return answer{json: res.Body, readable: func(w io.Writer) {
			printFields(w, "", "code", res.JSON200.Code, "expires in", (time.Duration(res.JSON200.ExpiresIn) * time.Second).String())
		}}, nil
	}
}

func tokenIntrospect(*flag.FlagSet) runFunc {
	return func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error) {
		res, err := c.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: args[0]})
		if err != nil {
			return answer{}, err
		}
		in := res.JSON200
		if in == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		if !in.Active {
			return answer{json: res.Body, exit: exitInactive, readable: func(w io.Writer) {
				fmt.Fprintln(w, "inactive (expired, revoked, rotated, unknown or not a token)")
			}}, nil
		}
		return answer{json: res.Body, readable: func(w io.Writer) {
			printFields(w, "active", "type", string(*in.TokenType), "plugin", *in.PluginID, "base", *in.BaseID,
				"scopes", strings.Join(*in.Scopes, ", "),
				"issued", time.Unix(*in.Iat, 0).UTC().Format(time.RFC3339), "expires", time.Unix(*in.Exp, 0).UTC().Format(time.RFC3339))
		}}, nil
	}
}

func tokenRevoke(*flag.FlagSet) runFunc {
	return func(ctx context.Context, c *gen.ClientWithResponses, args []string) (answer, error) {
		res, err := c.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: args[0]})
		if err != nil {
			return answer{}, err
		}
		if res.JSON200 == nil {
			return answer{}, apiError(res.HTTPResponse, res.Body)
		}
		return answer{json: res.Body, readable: func(w io.Writer) { fmt.Fprintln(w, "revoked (if it was a token at all: revocation never tells)") }}, nil
	}
}

// printFields prints a title and aligned "key: value" lines.
func printFields(w io.Writer, title string, kv ...string) {
	if title != "" {
		fmt.Fprintln(w, title)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "  %s:\t%s\n", kv[i], kv[i+1])
	}
	_ = tw.Flush()
}

// errUsage marks a usage error (exit 2).
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usageError(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

// apiError turns a non-success answer into an error that says what the
// server said.
func apiError(res *http.Response, body []byte) error {
	var e gen.Error
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Errorf("%s (%d %s)", e.Message, e.Status, e.Code)
	}
	if res.StatusCode == http.StatusNotFound {
		return fmt.Errorf("server answered %s at %s: is --server the plugintoken server's address?", res.Status, res.Request.URL)
	}
	return fmt.Errorf("server answered %s", res.Status)
}

// serverURL normalises --server: a bare host:port gets http://, and a
// trailing /api (the API's own prefix, which the client adds) or slash is
// dropped, so that "127.0.0.1:8080", "http://127.0.0.1:8080/" and
// "http://127.0.0.1:8080/api" all mean the same server.
func serverURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usageError("--server %q is not a server address: give host:port or http(s)://host:port", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/api")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

// reachError explains a request that never reached the server.
func reachError(server string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot connect to the server at %s (connection refused): is it running? Point --server or PLUGINTOKEN_SERVER at it", server)
	}
	return fmt.Errorf("cannot reach the server at %s: %w", server, err)
}

// commonFlags are the flags every admin command (and backup) has.
type commonFlags struct {
	server    *string
	asJSON    *bool
	tokenFile *string
}

func addCommonFlags(fs *flag.FlagSet, getenv func(string) string) commonFlags {
	return commonFlags{
		server: fs.String("server", envOr(getenv, "PLUGINTOKEN_SERVER", "http://127.0.0.1:8080"),
			"the server: host:port or http(s)://host:port (env PLUGINTOKEN_SERVER)"),
		asJSON: fs.Bool("json", false, "print JSON instead of the readable answer"),
		tokenFile: fs.String("admin-token-file", envOr(getenv, "PLUGINTOKEN_ADMIN_TOKEN_FILE", defaultAdminTokenFile(DefaultConfig().DBPath)),
			"admin token file, used when PLUGINTOKEN_ADMIN_TOKEN is not set"),
	}
}

// client connects to the server the common flags name.
func (f commonFlags) client(getenv func(string) string) (*gen.ClientWithResponses, string, error) {
	server, err := serverURL(*f.server)
	if err != nil {
		return nil, "", err
	}
	token, err := adminToken(getenv, *f.tokenFile)
	if err != nil {
		return nil, "", err
	}
	c, err := gen.NewClientWithResponses(server+"/api",
		gen.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	return c, server, err
}

// usageText is a command's --help.
func usageText(name, args, summary string, examples []string, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags] %s\n\n%s.\n\nExamples:\n", name, args, summary)
	for _, e := range examples {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	b.WriteString("\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(out)
	return b.String()
}

// fail reports err for the command name and returns the exit code: 2 for a
// usage error (with a pointer to --help), 1 for anything else.
func fail(stderr io.Writer, name string, err error) int {
	var bad errUsage
	if errors.As(err, &bad) || strings.HasPrefix(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "invalid value") {
		fmt.Fprintf(stderr, "%s: %v (see '%s --help')\n", name, err, name)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// groupUsage lists a group's commands.
func groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: plugintoken %s <command> [flags]\n\nCommands:\n", group)
	for _, c := range adminCommands {
		if c.group == group {
			fmt.Fprintf(w, "  %-18s %s\n", c.verb, c.summary)
		}
	}
	fmt.Fprintf(w, "\nRun 'plugintoken %s <command> --help' for a command's flags and examples.\n", group)
}

// runAdmin runs `plugintoken <group> <verb> ...` and returns the exit code.
func runAdmin(ctx context.Context, group string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		groupUsage(stderr, group)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		groupUsage(stdout, group)
		return 0
	}
	var cmd *command
	for i := range adminCommands {
		if adminCommands[i].group == group && adminCommands[i].verb == args[0] {
			cmd = &adminCommands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "plugintoken %s: unknown command %q\n\n", group, args[0])
		groupUsage(stderr, group)
		return 2
	}
	name := "plugintoken " + group + " " + cmd.verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by fail, help by usageText
	common := addCommonFlags(fs, getenv)
	run := cmd.flags(fs)
	positional, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText(name, cmd.args, cmd.summary, cmd.examples, fs))
		return 0
	}
	if err == nil && len(positional) != cmd.nargs {
		err = usageError("want %d argument(s) %s, got %d", cmd.nargs, cmd.args, len(positional))
	}
	for _, a := range positional {
		if err == nil && strings.TrimSpace(a) == "" {
			err = usageError("%s must not be empty", cmd.args)
		}
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	client, server, err := common.client(getenv)
	if err != nil {
		return fail(stderr, name, err)
	}
	ans, err := run(ctx, client, positional)
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = reachError(server, uerr.Err)
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	if *common.asJSON {
		fmt.Fprintln(stdout, strings.TrimSpace(string(ans.json)))
	} else {
		ans.readable(stdout)
	}
	return ans.exit
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments (the flag package stops at the first positional one).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

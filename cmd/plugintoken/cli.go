package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plugintoken/plugintoken/gen"
)

// The admin commands talk to a running server through the generated
// client. Each one prints something readable, or the server's JSON answer
// with --json; an error says what went wrong and exits 1 (2 for usage).

// adminCommand is one `plugintoken <group> <verb>` command.
type adminCommand struct {
	group, verb string
	args        string // positional arguments, for the usage line
	summary     string
	example     string
	nargs       int
	flags       func(fs *flag.FlagSet) func() any // declares flags; returns a getter of their values
	run         func(ctx context.Context, c *gen.ClientWithResponses, args []string, opts any) (answer, error)
}

// answer is a command's result: the server's JSON and a readable rendering.
type answer struct {
	json     []byte
	readable func(w io.Writer)
}

// scopeList is a repeatable --scope flag.
type scopeList []string

func (s *scopeList) String() string     { return strings.Join(*s, ",") }
func (s *scopeList) Set(v string) error { *s = append(*s, v); return nil }

var adminCommands = []adminCommand{
	{
		group: "plugin", verb: "create", summary: "register a plugin; prints its secret, once",
		example: "plugintoken plugin create --name Chart --scope table|read --scope record|read",
		flags: func(fs *flag.FlagSet) func() any {
			name := fs.String("name", "", "the plugin's name (required)")
			var scopes scopeList
			fs.Var(&scopes, "scope", "a scope the plugin may be granted; repeat it (default: the whole vocabulary)")
			return func() any { return gen.CreatePluginRequest{Name: *name, Scopes: nilIfEmpty(scopes)} }
		},
		run: func(ctx context.Context, c *gen.ClientWithResponses, _ []string, opts any) (answer, error) {
			req := opts.(gen.CreatePluginRequest)
			if req.Name == "" {
				return answer{}, usageError("--name is required")
			}
			res, err := c.CreatePluginWithResponse(ctx, req)
			if err != nil {
				return answer{}, err
			}
			if res.JSON201 == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			p := res.JSON201
			return answer{res.Body, func(w io.Writer) {
				printFields(w, "plugin created",
					"id", p.ID, "name", p.Name, "secret", p.Secret+"   (shown only now: store it)", "scopes", strings.Join(p.Scopes, ", "))
			}}, nil
		},
	},
	{
		group: "plugin", verb: "get", args: "PLUGIN_ID", nargs: 1, summary: "show a plugin (its secret masked)",
		example: "plugintoken plugin get pluXXXXXXXXXXXXXXXX",
		run: func(ctx context.Context, c *gen.ClientWithResponses, args []string, _ any) (answer, error) {
			res, err := c.GetPluginWithResponse(ctx, args[0])
			if err != nil {
				return answer{}, err
			}
			if res.JSON200 == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			p := res.JSON200
			return answer{res.Body, func(w io.Writer) {
				printFields(w, "", "id", p.ID, "name", p.Name, "secret", p.Secret, "scopes", strings.Join(p.Scopes, ", "))
			}}, nil
		},
	},
	{
		group: "plugin", verb: "delete", args: "PLUGIN_ID", nargs: 1, summary: "delete a plugin; its codes and tokens stop working",
		example: "plugintoken plugin delete pluXXXXXXXXXXXXXXXX",
		run: func(ctx context.Context, c *gen.ClientWithResponses, args []string, _ any) (answer, error) {
			res, err := c.DeletePluginWithResponse(ctx, args[0])
			if err != nil {
				return answer{}, err
			}
			if res.StatusCode() != http.StatusNoContent {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			return answer{[]byte(`{"deleted":true}`), func(w io.Writer) { fmt.Fprintf(w, "plugin %s deleted\n", args[0]) }}, nil
		},
	},
	{
		group: "plugin", verb: "regenerate-secret", args: "PLUGIN_ID", nargs: 1, summary: "give a plugin a new secret; the old one fails at once",
		example: "plugintoken plugin regenerate-secret pluXXXXXXXXXXXXXXXX",
		run: func(ctx context.Context, c *gen.ClientWithResponses, args []string, _ any) (answer, error) {
			res, err := c.RegeneratePluginSecretWithResponse(ctx, args[0])
			if err != nil {
				return answer{}, err
			}
			if res.JSON200 == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			return answer{res.Body, func(w io.Writer) {
				printFields(w, "secret regenerated", "id", res.JSON200.ID, "secret", res.JSON200.Secret+"   (shown only now: store it)")
			}}, nil
		},
	},
	{
		group: "code", verb: "issue", summary: "issue a single-use auth code for a plugin in a base",
		example: "plugintoken code issue --plugin pluXXXXXXXXXXXXXXXX --base bseXXXXXXXXXXXXXXXX",
		flags: func(fs *flag.FlagSet) func() any {
			plugin := fs.String("plugin", "", "plugin id (required)")
			base := fs.String("base", "", "base id (required)")
			return func() any { return [2]string{*plugin, *base} }
		},
		run: func(ctx context.Context, c *gen.ClientWithResponses, _ []string, opts any) (answer, error) {
			pb := opts.([2]string)
			if pb[0] == "" || pb[1] == "" {
				return answer{}, usageError("--plugin and --base are required")
			}
			res, err := c.CreateAuthCodeWithResponse(ctx, pb[0], gen.AuthCodeRequest{BaseID: pb[1]})
			if err != nil {
				return answer{}, err
			}
			if res.JSON200 == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			return answer{res.Body, func(w io.Writer) {
				printFields(w, "", "code", res.JSON200.Code, "expires in", (time.Duration(res.JSON200.ExpiresIn) * time.Second).String())
			}}, nil
		},
	},
	{
		group: "token", verb: "introspect", args: "TOKEN", nargs: 1, summary: "tell whether a token is active and what it grants",
		example: "plugintoken token introspect pta_...",
		run: func(ctx context.Context, c *gen.ClientWithResponses, args []string, _ any) (answer, error) {
			res, err := c.IntrospectTokenWithResponse(ctx, gen.TokenRequest{Token: args[0]})
			if err != nil {
				return answer{}, err
			}
			in := res.JSON200
			if in == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			return answer{res.Body, func(w io.Writer) {
				if !in.Active {
					fmt.Fprintln(w, "inactive (expired, revoked, rotated, unknown or not a token)")
					return
				}
				printFields(w, "active", "type", string(*in.TokenType), "plugin", *in.PluginID, "base", *in.BaseID,
					"scopes", strings.Join(*in.Scopes, ", "),
					"issued", time.Unix(*in.Iat, 0).UTC().Format(time.RFC3339), "expires", time.Unix(*in.Exp, 0).UTC().Format(time.RFC3339))
			}}, nil
		},
	},
	{
		group: "token", verb: "revoke", args: "TOKEN", nargs: 1, summary: "revoke a token (a refresh token takes its access token along)",
		example: "plugintoken token revoke ptr_...",
		run: func(ctx context.Context, c *gen.ClientWithResponses, args []string, _ any) (answer, error) {
			res, err := c.RevokeTokenWithResponse(ctx, gen.RevokeRequest{Token: args[0]})
			if err != nil {
				return answer{}, err
			}
			if res.JSON200 == nil {
				return answer{}, apiError(res.HTTPResponse, res.Body)
			}
			return answer{res.Body, func(w io.Writer) { fmt.Fprintln(w, "revoked (if it was a token at all: revocation never tells)") }}, nil
		},
	},
}

func nilIfEmpty(s scopeList) *[]string {
	if len(s) == 0 {
		return nil
	}
	v := []string(s)
	return &v
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

func usageError(msg string) error { return errUsage{msg} }

// apiError turns a non-success answer into an error that says what the
// server said.
func apiError(res *http.Response, body []byte) error {
	var e gen.Error
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Errorf("%s (%d %s)", e.Message, e.Status, e.Code)
	}
	return fmt.Errorf("server answered %s", res.Status)
}

// runAdmin runs `plugintoken <group> <verb> ...` and returns the exit code.
func runAdmin(ctx context.Context, group string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var verbs []adminCommand
	for _, c := range adminCommands {
		if c.group == group {
			verbs = append(verbs, c)
		}
	}
	groupUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: plugintoken %s <command> [flags]\n\nCommands:\n", group)
		for _, c := range verbs {
			fmt.Fprintf(w, "  %-18s %s\n", c.verb, c.summary)
		}
		fmt.Fprintf(w, "\nRun 'plugintoken %s <command> --help' for a command's flags and an example.\n", group)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		groupUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *adminCommand
	for i := range verbs {
		if verbs[i].verb == args[0] {
			cmd = &verbs[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "plugintoken %s: unknown command %q\n\n", group, args[0])
		groupUsage(stderr)
		return 2
	}
	name := "plugintoken " + group + " " + cmd.verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr(getenv, "PLUGINTOKEN_SERVER", "http://127.0.0.1:8080"), "server URL (env PLUGINTOKEN_SERVER)")
	asJSON := fs.Bool("json", false, "print the server's JSON answer instead")
	tokenFile := fs.String("admin-token-file", envOr(getenv, "PLUGINTOKEN_ADMIN_TOKEN_FILE", defaultAdminTokenFile(DefaultConfig().DBPath)),
		"admin token file, used when PLUGINTOKEN_ADMIN_TOKEN is not set")
	var opts func() any
	if cmd.flags != nil {
		opts = cmd.flags(fs)
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s [flags] %s\n\n%s.\n\nExample:\n  %s\n\nFlags:\n", name, cmd.args, cmd.summary, cmd.example)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fs.Usage = func() {} // errors are reported below, with the usage
	positional, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		usage(stderr)
	}
	if err == nil && len(positional) != cmd.nargs {
		err = fmt.Errorf("want %d argument(s) %s, got %d (see --help)", cmd.nargs, cmd.args, len(positional))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	token, err := adminToken(getenv, *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	client, err := gen.NewClientWithResponses(strings.TrimRight(*server, "/")+"/api",
		gen.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	var o any
	if opts != nil {
		o = opts()
	}
	ans, err := cmd.run(ctx, client, positional, o)
	var badUsage errUsage
	switch {
	case errors.As(err, &badUsage):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if *asJSON {
		fmt.Fprintln(stdout, strings.TrimSpace(string(ans.json)))
	} else {
		ans.readable(stdout)
	}
	return 0
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

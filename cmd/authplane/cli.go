package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/requestid"
)

// The command-line client: admin tasks over the gRPC API of a running server, as `authplane <group> <verb>`.
// Every command calls the generated gRPC clients with a token cached by `authplane login` (cli_login.go).

// Exit codes of the client commands (listed by `authplane help`). Scripts tell the cases apart by them.
const (
	exitOK               = 0
	exitError            = 1 // the server failed or refused the input, or anything else went wrong
	exitUsage            = 2 // the command line is wrong
	exitUnauthenticated  = 3 // not logged in, the login expired, or the server refused the token or the credentials
	exitPermissionDenied = 4
	exitNotFound         = 5
	exitConflict         = 6
)

// cliError is an error with its exit code. A usage error also prints the command's synopsis.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func notLoggedInf(format string, args ...any) error {
	return &cliError{code: exitUnauthenticated, msg: fmt.Sprintf(format, args...)}
}

// exitCodeOf maps an API error (a gRPC status) to its exit code by the HTTP status the contract gives it.
func exitCodeOf(d apierr.Described) int {
	switch d.HTTPStatus {
	case 401:
		return exitUnauthenticated
	case 403:
		return exitPermissionDenied
	case 404:
		return exitNotFound
	case 409:
		return exitConflict
	}
	return exitError
}

// cliEnv is what a command runs with: the process's environment and streams, injected so that tests run commands
// in-process against a real server.
type cliEnv struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

// call is one invocation of a command: its flags (every command has --profile and --output) and arguments.
type call struct {
	ctx    context.Context
	env    *cliEnv
	name   string // "client create"
	cmd    *clientCommand
	fs     *flag.FlagSet
	args   []string
	output *string
	prof   *string
	// requestID goes with every call of the command (x-request-id), so that the server's logs and audit events
	// of one command share it; an error message names it.
	requestID string
}

// clientCommand is one `authplane <group> <verb>`.
type clientCommand struct {
	args    string // the positional arguments, for the usage line
	summary string
	run     func(c *call) error
}

// commandGroups holds every client command by group and verb; filled by the files that define them.
var commandGroups = map[string]map[string]*clientCommand{}

func register(group, verb string, cmd *clientCommand) {
	if commandGroups[group] == nil {
		commandGroups[group] = map[string]*clientCommand{}
	}
	commandGroups[group][verb] = cmd
}

// groupSummaries say what each group is about, in the order `help` lists them.
var groupSummaries = []struct{ group, summary string }{
	{"login", "log in with client credentials; the token is cached in a profile"},
	{"logout", "forget a profile's tokens"},
	{"whoami", "show the logins of a profile"},
	{"tenant", "tenants (operator)"},
	{"workspace", "workspaces (authorization servers) of the tenant (admin)"},
	{"scope", "scopes of a workspace (admin)"},
	{"client", "OAuth clients (admin)"},
	{"key", "signing keys of a workspace (admin)"},
	{"pool", "identity pools (identity)"},
	{"user", "users of a pool (identity)"},
	{"session", "login sessions of a user (identity)"},
	{"audit", "audit events of the tenant (admin) or of the operator"},
}

// isClientCommand tells whether run should hand args[0] to cli.
func isClientCommand(name string) bool {
	return commandGroups[name] != nil
}

const cliUsage = `Client commands (they call a running server's gRPC API):
  authplane login --tenant T [--workspace admin|system] --client-id ID [--client-secret-stdin]
                                        log in on one plane: root/admin is the operator, T/admin the tenant's
                                        admin plane, T/system its identity plane
%s

Every client command takes --profile NAME (AUTHPLANE_PROFILE, default "default") and --output table|json
(-o; AUTHPLANE_OUTPUT). Run "authplane GROUP" for a group's commands, "authplane GROUP VERB -h" for the flags.

Exit codes of the client commands:
  0  ok
  1  the server failed or refused the input, or another error
  2  usage error (unknown command, bad or missing flag or argument)
  3  not logged in, the login expired, or the token or credentials were refused (401, Unauthenticated)
  4  permission denied (403, PermissionDenied)
  5  not found (404, NotFound)
  6  conflict (409, AlreadyExists)
`

// clientCommandList is the group lines of cliUsage.
func clientCommandList() string {
	var b strings.Builder
	for _, g := range groupSummaries {
		if g.group == "login" {
			continue
		}
		verbs := slices.Sorted(maps.Keys(commandGroups[g.group]))
		line := "  authplane " + g.group
		if len(verbs) > 1 || (len(verbs) == 1 && verbs[0] != "") {
			line += " " + strings.Join(verbs, "|")
		}
		if len(line) >= 38 {
			line += "\n" + strings.Repeat(" ", 40)
		}
		fmt.Fprintf(&b, "%-40s%s\n", line, g.summary)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// cli runs one client command and returns its exit code.
func cli(ctx context.Context, args []string, env *cliEnv) int {
	if env.now == nil {
		env.now = time.Now
	}
	group := commandGroups[args[0]]
	name, verb, rest := args[0], "", args[1:]
	if _, single := group[""]; !single {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
				printGroupUsage(env.stdout, name)
				return exitOK
			}
			printGroupUsage(env.stderr, name)
			return exitUsage
		}
		verb, rest = rest[0], rest[1:]
		if verb == "help" {
			printGroupUsage(env.stdout, name)
			return exitOK
		}
		name += " " + verb
	}
	cmd := group[verb]
	if cmd == nil {
		fmt.Fprintf(env.stderr, "authplane: unknown command %q\n\n", name)
		printGroupUsage(env.stderr, args[0])
		return exitUsage
	}
	c := newCall(ctx, env, name, cmd, rest)
	err := cmd.run(c)
	return c.finish(err)
}

func printGroupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage:\n")
	cmds := commandGroups[group]
	for _, verb := range slices.Sorted(maps.Keys(cmds)) {
		cmd := cmds[verb]
		line := strings.TrimSpace("authplane " + group + " " + verb + " " + cmd.args)
		fmt.Fprintf(w, "  %-50s %s\n", line, cmd.summary)
	}
	fmt.Fprintf(w, "\nRun \"authplane %s VERB -h\" for a command's flags.\n", group)
}

func newCall(ctx context.Context, env *cliEnv, name string, cmd *clientCommand, args []string) *call {
	fs := flag.NewFlagSet("authplane "+name, flag.ContinueOnError)
	// The flag package would print its error and the whole usage on any mistake; finish says it once instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	id := requestid.New()
	c := &call{ctx: metadata.AppendToOutgoingContext(ctx, requestid.MetadataKey, id), env: env, name: name, cmd: cmd, fs: fs, args: args, requestID: id}
	profile := env.getenv("AUTHPLANE_PROFILE")
	if profile == "" {
		profile = "default"
	}
	c.prof = fs.String("profile", profile, "the profile whose logins to use (AUTHPLANE_PROFILE)")
	output := env.getenv("AUTHPLANE_OUTPUT")
	if output == "" {
		output = "table"
	}
	c.output = fs.String("output", output, "table or json (AUTHPLANE_OUTPUT)")
	fs.StringVar(c.output, "o", output, "shorthand for --output")
	return c
}

// usageLine is the command's synopsis.
func (c *call) usageLine() string {
	return strings.TrimSpace("authplane " + c.name + " [flags] " + c.cmd.args)
}

// printHelp is what -h prints: the synopsis, what the command does, and its flags.
func (c *call) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n  %s\n\nFlags:\n", c.usageLine(), c.cmd.summary)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// parse parses the flags, which may come before, between or after the positional arguments (the standard flag
// package stops at the first argument, and `authplane client get ID -o json` should work), and checks that there
// are between min and max positional arguments (max < 0: no limit).
func (c *call) parse(min, max int) error {
	var positional []string
	args := c.args
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errHelp
			}
			return usageErrorf("%v", err)
		}
		rest := c.fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...) // "--" ends the flags
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	c.args = positional
	switch *c.output {
	case "table", "json":
	default:
		return usageErrorf("--output must be table or json, not %q", *c.output)
	}
	if len(c.args) < min || (max >= 0 && len(c.args) > max) {
		want := fmt.Sprintf("%d", min)
		switch {
		case max < 0:
			want = fmt.Sprintf("at least %d", min)
		case max != min:
			want = fmt.Sprintf("%d to %d", min, max)
		}
		return usageErrorf("%s takes %s argument(s) (%s), got %d", c.name, want, strings.TrimSpace(c.cmd.args), len(c.args))
	}
	return nil
}

// errHelp ends a command that was asked for its flags (-h): exit 0.
var errHelp = errors.New("help")

// arg is the i-th positional argument (parse checked the count).
func (c *call) arg(i int) string { return c.args[i] }

// json tells whether the output is JSON.
func (c *call) json() bool { return *c.output == "json" }

// finish prints err and turns it into the exit code.
func (c *call) finish(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		c.printHelp(c.env.stdout)
		return exitOK
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintln(c.env.stderr, "authplane:", ce.msg)
		if ce.code == exitUsage {
			fmt.Fprintf(c.env.stderr, "Usage: %s (\"authplane %s -h\" lists the flags)\n", c.usageLine(), c.name)
		}
		return ce.code
	}
	if c.ctx.Err() != nil {
		fmt.Fprintln(c.env.stderr, "authplane: interrupted")
		return exitError
	}
	d := apierr.Describe(err)
	if _, isStatus := grpcStatus(err); !isStatus {
		fmt.Fprintln(c.env.stderr, "authplane:", err)
		return exitError
	}
	msg := d.Message + " (" + d.ErrorCode
	if d.Field != "" {
		msg += ", field " + d.Field
	}
	msg += "; request id " + c.requestID + ")"
	code := exitCodeOf(d)
	if code == exitUnauthenticated {
		msg += "; run `authplane login` again"
	}
	fmt.Fprintln(c.env.stderr, "authplane:", msg)
	return code
}

// visited is the set of flags given on the command line (to build update masks from).
func (c *call) visited() map[string]bool {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// listFlag is a repeatable, comma-separated list flag (--grant-types a,b or --grant-types a --grant-types b).
type listFlag struct{ values []string }

func (l *listFlag) String() string { return strings.Join(l.values, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.values = append(l.values, v)
		}
	}
	return nil
}

func (c *call) list(name, usage string) *listFlag {
	l := &listFlag{}
	c.fs.Var(l, name, usage+" (comma-separated or repeated)")
	return l
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"fieldhub/app"
)

// errUsagePrinted means the usage text already went to stderr.
var errUsagePrinted = errors.New("usage")

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func exitCode(err error) int {
	var ue *usageError
	if errors.Is(err, errUsagePrinted) || errors.As(err, &ue) {
		return 2
	}
	return 1
}

// env is how the CLI reads its environment; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// readLine reads one line of standard input, without its line ending.
func (e env) readLine() string {
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	return strings.TrimRight(line, "\r\n")
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the hub: dashboard, API and device endpoints", runServe},
		{"device", "manage devices: add, list, show, rm, enable, disable, rotate-key, token", runDevice},
		{"user", "manage operators: add, list, passwd, rm", runUser},
		{"token", "manage operator API tokens: create, list, revoke", runToken},
		{"ca", "manage CA certificates for X.509 devices: add, list, rm", runCA},
		{"policy", "manage shared access policies of the service API: add, list, rm, rotate-key", runPolicy},
		{"simulate", "run simulated devices that send telemetry to a hub", runSimulate},
		{"backup", "write a consistent copy of a data folder to one file, also while the hub runs", runBackup},
		{"restore", "put a backup in place for a stopped hub", runRestore},
		{"doctor", "check ports, certificate, clock, file limit, disk and data folder before serving", runDoctor},
		{"version", "print the version, commit and build time", runVersion},
	}
}

func mainUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: fieldhub <command> [flags] [arguments]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'fieldhub <command> --help' for a command's flags.")
}

// run is the whole program; main and the end-to-end tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		mainUsage(stderr)
		return errUsagePrinted
	}
	switch args[0] {
	case "-h", "--help", "help":
		mainUsage(stdout)
		return nil
	case "--version", "-version":
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(ctx, e, args[1:]); !errors.Is(err, errHelp) {
				return err
			}
			return nil
		}
	}
	mainUsage(stderr)
	return usagef("unknown command %q", args[0])
}

// parseFlags parses flags that may come before, between or after positional
// arguments (`device add dev1 --name x` and `device add --name x dev1` both work).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errHelp means --help was asked for and printed; it is not a failure.
var errHelp = errors.New("help printed")

func newFlagSet(e env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: fieldhub %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// location is where a command finds the hub's state: the data folder, and
// the PostgreSQL database when the hub keeps its state there.
type location struct {
	data, store *string
}

// storeUsage describes --store, serve's and every other command's.
const storeUsage = "PostgreSQL database that holds every kind of state, postgres://USER:PASSWORD@HOST[:PORT]/DATABASE; empty keeps it in SQLite in the data folder (env FIELDHUB_STORE)"

// dataFlag adds --data and --store with the FIELDHUB_DATA and
// FIELDHUB_STORE fallbacks.
func dataFlag(fs *flag.FlagSet, e env) location {
	return location{
		data:  fs.String("data", envOr(e, "FIELDHUB_DATA", "./data"), "data folder (env FIELDHUB_DATA)"),
		store: fs.String("store", envOr(e, "FIELDHUB_STORE", ""), storeUsage),
	}
}

func envOr(e env, key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

// openDB opens the store of l; the commands work beside a running hub.
func openDB(ctx context.Context, l location) (app.Store, error) {
	return app.OpenStoreAt(ctx, *l.data, *l.store)
}

// subcommand dispatches "fieldhub <group> <verb>".
func subcommand(ctx context.Context, e env, group string, args []string, verbs map[string]func(context.Context, env, []string) error) error {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		w := e.stderr
		if len(args) > 0 {
			w = e.stdout
		}
		fmt.Fprintf(w, "Usage: fieldhub %s <%s> [flags]\n", group, strings.Join(names, "|"))
		if len(args) == 0 {
			return errUsagePrinted
		}
		// Asked for help: each subcommand's usage and flags, as its own
		// --help prints them (flags are parsed before anything is opened).
		for _, n := range names {
			var help bytes.Buffer
			_ = verbs[n](ctx, env{getenv: e.getenv, stdin: strings.NewReader(""), stdout: &help, stderr: &help}, []string{"--help"})
			fmt.Fprintf(w, "\n%s", help.String())
		}
		return nil
	}
	fn, ok := verbs[args[0]]
	if !ok {
		return usagef("unknown %s command %q; use one of: %s", group, args[0], strings.Join(names, ", "))
	}
	err := fn(ctx, e, args[1:])
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

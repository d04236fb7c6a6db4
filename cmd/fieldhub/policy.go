package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"fieldhub/app"
	"fieldhub/db"
	"fieldhub/policy"
)

// runPolicy manages the shared access policies of the service API.
func runPolicy(ctx context.Context, e env, args []string) error {
	return subcommand(ctx, e, "policy", args, map[string]func(context.Context, env, []string) error{
		"add":        policyAdd,
		"list":       policyList,
		"rm":         policyRemove,
		"rotate-key": policyRotateKey,
	})
}

// cliPolicies is the policy service as the CLI uses it: a running hub reads
// policies from the store on every request, so changes made here apply at once.
func cliPolicies(d app.Store, e env) *policy.Service {
	return policy.New(policy.Config{Store: d, Logger: slog.New(slog.NewTextHandler(e.stderr, nil))})
}

// withPolicy parses flags, expects exactly one policy name, opens the store and calls fn.
func withPolicy(ctx context.Context, e env, args []string, name, usage string, setup func(*flag.FlagSet), fn func(app.Store, string) error) error {
	fs := newFlagSet(e, name, usage)
	data := dataFlag(fs, e)
	if setup != nil {
		setup(fs)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("%s: expected one policy name, got %d arguments", name, len(pos))
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, pos[0])
}

// serviceHost is the HostName of service connection strings: the HTTPS
// device listener as the hub last ran on this data folder.
func serviceHost(ctx context.Context, d app.Store) (string, error) {
	ep, _, err := deviceEndpoints(ctx, d)
	if err != nil {
		return "", err
	}
	return policy.ServiceHost(ep.Host, ep.HTTPSPort), nil
}

// printServiceConnection prints a policy's connection string alone on the
// last line of standard output, what scripts read.
func printServiceConnection(ctx context.Context, e env, d app.Store, p db.Policy, key string) error {
	host, err := serviceHost(ctx, d)
	if err != nil {
		return err
	}
	p.PrimaryKey = key
	fmt.Fprintln(e.stdout, policy.ConnectionString(host, p))
	return nil
}

func policyAdd(ctx context.Context, e env, args []string) error {
	var rights *string
	return withPolicy(ctx, e, args, "policy add", "policy add [--data DIR] --rights registryRead,registryWrite,serviceConnect,deviceConnect <name>",
		func(fs *flag.FlagSet) {
			rights = fs.String("rights", "", "comma-separated rights: "+strings.Join(db.RightNames(), ", ")+" (registryWrite brings registryRead)")
		},
		func(d app.Store, name string) error {
			if *rights == "" {
				return usagef("policy add: --rights is required (%s)", strings.Join(db.RightNames(), ", "))
			}
			r, err := db.ParseRights(*rights)
			if err != nil {
				return usagef("policy add: %v", err)
			}
			p, err := cliPolicies(d, e).Create(ctx, actorCLI, name, r)
			if err != nil {
				return fmt.Errorf("add policy: %w", err)
			}
			fmt.Fprintf(e.stderr, "policy %s added with rights %s; its service connection string (a secret):\n", p.Name, p.Rights)
			return printServiceConnection(ctx, e, d, p, p.PrimaryKey)
		})
}

func policyList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "policy list", "policy list [--data DIR]")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("policy list takes no arguments, got %q", pos)
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	list, err := cliPolicies(d, e).List(ctx)
	if err != nil {
		return err
	}
	// Keys stay out of the list; add and rotate-key print them.
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRIGHTS\tCREATED\tKEYS CHANGED")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Rights, p.CreatedAt.Local().Format(time.DateTime), p.UpdatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func policyRemove(ctx context.Context, e env, args []string) error {
	return withPolicy(ctx, e, args, "policy rm", "policy rm [--data DIR] <name>", nil, func(d app.Store, name string) error {
		if err := cliPolicies(d, e).Remove(ctx, actorCLI, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "policy %s removed; tokens signed with its keys no longer work\n", name)
		return nil
	})
}

func policyRotateKey(ctx context.Context, e env, args []string) error {
	var which *string
	return withPolicy(ctx, e, args, "policy rotate-key", "policy rotate-key [--data DIR] [--key primary|secondary] <name>",
		func(fs *flag.FlagSet) {
			which = fs.String("key", db.PrimaryKey, "which key to replace: primary or secondary")
		},
		func(d app.Store, name string) error {
			p, err := cliPolicies(d, e).RotateKey(ctx, actorCLI, name, *which)
			if err != nil {
				return err
			}
			key := p.PrimaryKey
			if *which == db.SecondaryKey {
				key = p.SecondaryKey
			}
			fmt.Fprintf(e.stderr, "%s key of policy %s replaced; new service connection string:\n", *which, name)
			return printServiceConnection(ctx, e, d, p, key)
		})
}

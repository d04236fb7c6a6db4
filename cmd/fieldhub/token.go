package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

func runToken(ctx context.Context, e env, args []string) error {
	return subcommand(ctx, e, "token", args, map[string]func(context.Context, env, []string) error{
		"create": tokenCreate,
		"list":   tokenList,
		"revoke": tokenRevoke,
	})
}

func tokenCreate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token create", "token create [--data DIR] --role admin|operator|viewer [--name NAME]")
	data := dataFlag(fs, e)
	role := fs.String("role", "", "admin, operator or viewer (required)")
	name := fs.String("name", "", "a name to recognise the token by")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("token create takes no arguments, got %q", pos)
	}
	if *role == "" {
		return usagef("token create: --role is required (admin, operator or viewer)")
	}
	if err := db.ValidateRole(*role); err != nil {
		return usagef("token create: %v", err)
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	secret := auth.NewAPIToken()
	t, err := d.CreateAPIToken(ctx, *name, *role, secret)
	if err != nil {
		return err
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "token.create", Target: strconv.FormatInt(t.ID, 10), Detail: *role}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "token %d (%s, role %s) created; it is shown only now:\n", t.ID, *name, *role)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

func tokenList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token list", "token list [--data DIR]")
	data := dataFlag(fs, e)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("token list takes no arguments")
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	toks, err := d.APITokens(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tPREFIX\tCREATED\tLAST USED\tSTATE")
	for _, t := range toks {
		used, state := "never", "active"
		if !t.LastUsedAt.IsZero() {
			used = t.LastUsedAt.Local().Format(time.DateTime)
		}
		if !t.RevokedAt.IsZero() {
			state = "revoked " + t.RevokedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Prefix, t.CreatedAt.Local().Format(time.DateTime), used, state)
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token revoke", "token revoke [--data DIR] <id>")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("token revoke: expected one token id (see token list)")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return usagef("token revoke: %q is not a token id; ids are numbers (see token list)", pos[0])
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.RevokeAPIToken(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "token %d revoked\n", id)
	return d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "token.revoke", Target: pos[0]})
}

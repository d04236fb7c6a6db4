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
	fs := newFlagSet(e, "token create", "token create [--data DIR] --role admin|operator|viewer [--name NAME] [--expires 90d|720h|2027-01-31|never]")
	data := dataFlag(fs, e)
	role := fs.String("role", "", "admin, operator or viewer (required)")
	name := fs.String("name", "", "a name to recognise the token by")
	expiresFlag := fs.String("expires", "never", "when the token stops working: never, days (90d), a duration (720h), a date (2027-01-31, UTC) or an RFC 3339 time")
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
	expires, err := db.ParseTokenExpiry(*expiresFlag, time.Now())
	if err != nil {
		return usagef("token create: --%v", err)
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	secret := auth.NewAPIToken()
	t, err := d.CreateAPITokenUntil(ctx, *name, *role, secret, expires)
	if err != nil {
		return err
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "token.create", Target: strconv.FormatInt(t.ID, 10),
		Detail: "name " + t.Name + ", role " + t.Role + ", expires " + expiryText(t.ExpiresAt)}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "token %d (%s, role %s, expires %s) created; it is shown only now:\n", t.ID, *name, *role, expiryText(t.ExpiresAt))
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
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tPREFIX\tCREATED\tLAST USED\tEXPIRES\tSTATE")
	now := time.Now()
	for _, t := range toks {
		used, state := "never", t.State(now)
		if !t.LastUsedAt.IsZero() {
			used = t.LastUsedAt.Local().Format(time.DateTime)
		}
		if !t.RevokedAt.IsZero() {
			state += " " + t.RevokedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Prefix, t.CreatedAt.Local().Format(time.DateTime), used,
			expiryText(t.ExpiresAt), state)
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

// expiryText is when a token expires, in local time, or "never".
func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}

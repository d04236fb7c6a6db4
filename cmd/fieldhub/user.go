package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

func runUser(ctx context.Context, e env, args []string) error {
	return subcommand(ctx, e, "user", args, map[string]func(context.Context, env, []string) error{
		"add":    userAdd,
		"list":   userList,
		"passwd": userPasswd,
		"rm":     userRemove,
	})
}

// passwordFlags adds --password and --password-stdin; without either a random
// password is generated and printed.
func passwordFlags(fs *flag.FlagSet) (pw *string, fromStdin *bool) {
	return fs.String("password", "", "the password (visible in process lists; prefer --password-stdin)"),
		fs.Bool("password-stdin", false, "read the password from the first line of standard input")
}

func readPassword(e env, pw string, fromStdin bool, stdin func() string) (string, bool) {
	if fromStdin {
		return stdin(), false
	}
	if pw != "" {
		return pw, false
	}
	return auth.NewPassword(), true
}

func userAdd(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "user add", "user add [--data DIR] [--role admin|operator|viewer] [--password-stdin] <username>")
	data := dataFlag(fs, e)
	role := fs.String("role", db.RoleViewer, "admin, operator or viewer")
	pw, fromStdin := passwordFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("user add: expected one username, got %d arguments", len(pos))
	}
	if err := db.ValidateRole(*role); err != nil {
		return usagef("user add: %v", err)
	}
	password, generated := readPassword(e, *pw, *fromStdin, e.readLine)
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.CreateUser(ctx, pos[0], hash, *role); err != nil {
		return err
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "user.create", Target: pos[0], Detail: *role}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "user %s added with role %s\n", pos[0], *role)
	if generated {
		fmt.Fprintf(e.stdout, "password: %s\n", password)
	}
	return nil
}

func userList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "user list", "user list [--data DIR]")
	data := dataFlag(fs, e)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("user list takes no arguments")
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	users, err := d.Users(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Username, u.Role, u.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func userPasswd(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "user passwd", "user passwd [--data DIR] [--password-stdin] <username>")
	data := dataFlag(fs, e)
	pw, fromStdin := passwordFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("user passwd: expected one username, got %d arguments", len(pos))
	}
	password, generated := readPassword(e, *pw, *fromStdin, e.readLine)
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.SetPassword(ctx, pos[0], hash); err != nil {
		return err
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "user.password", Target: pos[0]}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "password of %s changed; their sessions were ended\n", pos[0])
	if generated {
		fmt.Fprintf(e.stdout, "password: %s\n", password)
	}
	return nil
}

func userRemove(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "user rm", "user rm [--data DIR] <username>")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("user rm: expected one username, got %d arguments", len(pos))
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.DeleteUser(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "user %s removed\n", pos[0])
	return d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "user.delete", Target: pos[0]})
}

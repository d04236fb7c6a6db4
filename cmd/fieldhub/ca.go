package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"fieldhub/auth"
)

// runCA manages the CA certificates that certificateAuthority devices'
// certificates chain to.
func runCA(ctx context.Context, e env, args []string) error {
	return subcommand(ctx, e, "ca", args, map[string]func(context.Context, env, []string) error{
		"add":  caAdd,
		"list": caList,
		"rm":   caRemove,
	})
}

func caAdd(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "ca add", "ca add [--data DIR] <name> <cert.pem|->")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return usagef("ca add: expected a name and a PEM file (- for standard input), got %d arguments", len(pos))
	}
	pemBytes, err := readPEM(e, pos[1])
	if err != nil {
		return err
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	ca, err := cliRegistry(d, e).AddCA(ctx, actorCLI, pos[0], pemBytes)
	if err != nil {
		return fmt.Errorf("ca add: %w", err)
	}
	fmt.Fprintf(e.stdout, "CA %s added: %s, thumbprint %s, expires %s\n", ca.Name, ca.Subject, ca.Thumbprint, ca.NotAfter.Local().Format(time.DateTime))
	return nil
}

// readPEM reads a certificate file (or standard input for "-"), refusing
// anything larger than a CA certificate can be.
func readPEM(e env, path string) ([]byte, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("ca add: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, auth.MaxCACertificateSize+1))
	if err != nil {
		return nil, fmt.Errorf("ca add: read %s: %w", path, err)
	}
	return b, nil
}

func caList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "ca list", "ca list [--data DIR]")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("ca list takes no arguments, got %q", pos)
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	cas, err := d.CertificateAuthorities(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBJECT\tTHUMBPRINT (SHA-256)\tEXPIRES")
	now := time.Now()
	for _, ca := range cas {
		expires := ca.NotAfter.Local().Format(time.DateTime)
		if now.After(ca.NotAfter) {
			expires += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ca.Name, ca.Subject, ca.Thumbprint, expires)
	}
	return tw.Flush()
}

func caRemove(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "ca rm", "ca rm [--data DIR] <name>")
	data := dataFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("ca rm: expected one CA name, got %d arguments", len(pos))
	}
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := cliRegistry(d, e).RemoveCA(ctx, actorCLI, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "CA %s removed; a running hub closes the connections it admitted within 5 s\n", pos[0])
	return nil
}

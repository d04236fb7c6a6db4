package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/registry"
)

// actorCLI names the CLI in the audit log.
const actorCLI = "cli"

// cliRegistry is the device registry as the CLI uses it: no live viewers
// and no connections in this process. A running hub closes the connections
// a change no longer admits at its next periodic recheck (every 5 s), and
// its device credential cache forgets within a second.
func cliRegistry(d *db.DB, e env) *registry.Registry {
	return registry.New(registry.Config{Store: d, Audit: d, Logger: slog.New(slog.NewTextHandler(e.stderr, nil))})
}

// defaultDeviceHost is used for connection strings before serve has recorded the
// real one: MQTT devices then dial the default port, 8883.
const defaultDeviceHost = "localhost"

func runDevice(ctx context.Context, e env, args []string) error {
	return subcommand(ctx, e, "device", args, map[string]func(context.Context, env, []string) error{
		"add":        deviceAdd,
		"list":       deviceList,
		"show":       deviceShow,
		"rm":         deviceRemove,
		"enable":     func(ctx context.Context, e env, a []string) error { return deviceSetEnabled(ctx, e, a, true) },
		"disable":    func(ctx context.Context, e env, a []string) error { return deviceSetEnabled(ctx, e, a, false) },
		"rotate-key": deviceRotateKey,
		"token":      deviceToken,
	})
}

// withDevice parses flags, expects exactly one device id, opens the database and calls fn.
func withDevice(ctx context.Context, e env, args []string, name, usage string, setup func(*flag.FlagSet), fn func(*db.DB, string) error) error {
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
		return usagef("%s: expected one device id, got %d arguments", name, len(pos))
	}
	d, err := openDB(ctx, *data)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, pos[0])
}

func deviceHost(ctx context.Context, d *db.DB) (string, error) {
	return d.Setting(ctx, db.SettingDeviceHost, defaultDeviceHost)
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func deviceAdd(ctx context.Context, e env, args []string) error {
	var name, tags *string
	var thumbprints stringList
	var viaCA *bool
	return withDevice(ctx, e, args, "device add", "device add [--data DIR] [--name NAME] [--tags k=v,k=v] [--x509-thumbprint HEX [--x509-thumbprint HEX] | --x509-ca] <id>",
		func(fs *flag.FlagSet) {
			name = fs.String("name", "", "display name")
			tags = fs.String("tags", "", "tags as k=v,k=v")
			fs.Var(&thumbprints, "x509-thumbprint", "authenticate with a self-signed X.509 certificate of this SHA-256 (or SHA-1) thumbprint; a second one is the secondary")
			viaCA = fs.Bool("x509-ca", false, "authenticate with an X.509 certificate issued by a CA the hub trusts (fieldhub ca add), subject CN = device id")
		},
		func(d *db.DB, id string) error {
			t, err := db.ParseTags(*tags)
			if err != nil {
				return err
			}
			var a db.Authentication
			switch {
			case len(thumbprints) > 0 && *viaCA:
				return usagef("device add: --x509-thumbprint and --x509-ca exclude each other")
			case len(thumbprints) > 2:
				return usagef("device add: at most two --x509-thumbprint (primary and secondary), got %d", len(thumbprints))
			case len(thumbprints) > 0:
				a = db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: thumbprints[0]}
				if len(thumbprints) == 2 {
					a.SecondaryThumbprint = thumbprints[1]
				}
			case *viaCA:
				a.Type = auth.AuthCertificateAuthority
			}
			dev, err := cliRegistry(d, e).Create(ctx, actorCLI, db.NewDevice{DeviceID: id, Name: *name, Tags: t, Auth: a})
			if err != nil {
				return fmt.Errorf("add device: %w", err)
			}
			host, err := deviceHost(ctx, d)
			if err != nil {
				return err
			}
			switch dev.Auth.Type {
			case auth.AuthSelfSigned:
				fmt.Fprintf(e.stderr, "device %s added; it presents the certificate of thumbprint %s. Its connection string (give the SDK its certificate and key too):\n", dev.DeviceID, dev.Auth.PrimaryThumbprint)
			case auth.AuthCertificateAuthority:
				fmt.Fprintf(e.stderr, "device %s added; it presents a certificate with subject CN=%s issued by a CA the hub trusts. Its connection string (give the SDK its certificate and key too):\n", dev.DeviceID, dev.DeviceID)
			default:
				fmt.Fprintf(e.stderr, "device %s added; its connection string:\n", dev.DeviceID)
			}
			fmt.Fprintln(e.stdout, registry.ConnectionString(host, dev))
			return nil
		})
}

func deviceList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "device list", "device list [--data DIR] [--status online|offline|disabled] [--q TEXT]")
	data := dataFlag(fs, e)
	status := fs.String("status", "", "only devices in this status")
	q := fs.String("q", "", "only devices whose id, name or tags contain this text")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("device list takes no arguments, got %q", pos)
	}
	d, err := openDB(ctx, *data)
	if err != nil {
		return err
	}
	defer d.Close()
	devs, _, err := d.Devices(ctx, db.DeviceFilter{Query: *q, Status: *status})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tLAST ACTIVITY\tTAGS")
	now := time.Now()
	for _, dev := range devs {
		last := "never"
		if !dev.LastActivity.IsZero() {
			last = dev.LastActivity.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dev.DeviceID, dev.Name, dev.Status(now), last, db.FormatTags(dev.Tags))
	}
	return tw.Flush()
}

func deviceShow(ctx context.Context, e env, args []string) error {
	var keys *string
	return withDevice(ctx, e, args, "device show", "device show [--data DIR] [--keys yes] <id>",
		func(fs *flag.FlagSet) {
			keys = fs.String("keys", "no", "also print the keys and connection string (yes|no)")
		},
		func(d *db.DB, id string) error {
			dev, err := d.Device(ctx, id)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\nname\t%s\nstatus\t%s\ntags\t%s\ncreated\t%s\nauthentication\t%s\n", dev.DeviceID, dev.Name,
				dev.Status(time.Now()), db.FormatTags(dev.Tags), dev.CreatedAt.Local().Format(time.DateTime), dev.Auth.Type)
			if dev.Auth.Type == auth.AuthSelfSigned {
				fmt.Fprintf(tw, "primary thumbprint\t%s\nsecondary thumbprint\t%s\n", dev.Auth.PrimaryThumbprint, dev.Auth.SecondaryThumbprint)
			}
			if dev.LastActivity.IsZero() {
				fmt.Fprintln(tw, "last activity\tnever")
			} else {
				fmt.Fprintf(tw, "last activity\t%s\n", dev.LastActivity.Local().Format(time.DateTime))
			}
			if *keys == "yes" {
				host, err := deviceHost(ctx, d)
				if err != nil {
					return err
				}
				if !dev.Auth.X509() {
					fmt.Fprintf(tw, "primary key\t%s\nsecondary key\t%s\n", dev.PrimaryKey, dev.SecondaryKey)
				}
				fmt.Fprintf(tw, "connection string\t%s\n", registry.ConnectionString(host, dev))
			}
			return tw.Flush()
		})
}

func deviceRemove(ctx context.Context, e env, args []string) error {
	return withDevice(ctx, e, args, "device rm", "device rm [--data DIR] <id>", nil, func(d *db.DB, id string) error {
		if err := cliRegistry(d, e).Delete(ctx, actorCLI, id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "device %s removed\n", id)
		return nil
	})
}

func deviceSetEnabled(ctx context.Context, e env, args []string, enabled bool) error {
	verb := map[bool]string{true: "enable", false: "disable"}[enabled]
	return withDevice(ctx, e, args, "device "+verb, "device "+verb+" [--data DIR] <id>", nil, func(d *db.DB, id string) error {
		if _, err := cliRegistry(d, e).SetEnabled(ctx, actorCLI, id, enabled); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "device %s %sd\n", id, verb)
		return nil
	})
}

func deviceRotateKey(ctx context.Context, e env, args []string) error {
	var which *string
	return withDevice(ctx, e, args, "device rotate-key", "device rotate-key [--data DIR] [--key primary|secondary] <id>",
		func(fs *flag.FlagSet) {
			which = fs.String("key", db.PrimaryKey, "which key to replace: primary or secondary")
		},
		func(d *db.DB, id string) error {
			dev, err := cliRegistry(d, e).RotateKey(ctx, actorCLI, id, *which)
			if err != nil {
				return err
			}
			host, err := deviceHost(ctx, d)
			if err != nil {
				return err
			}
			key := dev.PrimaryKey
			if *which == db.SecondaryKey {
				key = dev.SecondaryKey
			}
			fmt.Fprintf(e.stderr, "%s key of %s replaced; new connection string:\n", *which, id)
			fmt.Fprintln(e.stdout, registry.KeyConnectionString(host, id, key))
			return nil
		})
}

package main

import (
	"context"
	"fieldhub/app"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
func cliRegistry(d app.Store, e env) *registry.Registry {
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
func withDevice(ctx context.Context, e env, args []string, name, usage string, setup func(*flag.FlagSet), fn func(app.Store, string) error) error {
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
	d, err := openDB(ctx, data)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, pos[0])
}

func deviceHost(ctx context.Context, d app.Store) (string, error) {
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
		func(d app.Store, id string) error {
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
	d, err := openDB(ctx, data)
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
	var keys, transport *string
	return withDevice(ctx, e, args, "device show", "device show [--data DIR] [--keys yes] [--transport mqtt|mqtt-ws|https] <id>",
		func(fs *flag.FlagSet) {
			keys = fs.String("keys", "no", "also print the keys and connection string (yes|no)")
			transport = fs.String("transport", "", "also print how the device connects over this transport (mqtt, mqtt-ws or https): "+
				"connection string, port, whether it works as the hub runs, and code for the SDKs, as the device page shows")
		},
		func(d app.Store, id string) error {
			if *transport != "" && !slices.Contains(registry.Transports, *transport) {
				return usagef("device show: --transport %q: use mqtt, mqtt-ws or https", *transport)
			}
			dev, err := d.Device(ctx, id)
			if err != nil {
				return err
			}
			ep, recorded, err := deviceEndpoints(ctx, d)
			if err != nil {
				return err
			}
			conns, err := registry.Connections(ep, dev, registry.ConnectOptions{Secrets: *keys == "yes", Now: time.Now()})
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
			for _, c := range conns {
				fmt.Fprintf(tw, "transport %s\t%s\n", c.Transport, connectionSummary(c))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !recorded {
				fmt.Fprintln(e.stderr, "note: no hub has run on this data folder yet; transports show serve's defaults (MQTT :8883, HTTPS :8443)")
			}
			if *transport == "" {
				return nil
			}
			for _, c := range conns {
				if c.Transport == *transport {
					printConnection(e.stdout, c, ep)
				}
			}
			return nil
		})
}

// connectionSummary is one line of device show per transport.
func connectionSummary(c registry.Connection) string {
	switch {
	case !c.Served:
		return "not served"
	case c.Works:
		return fmt.Sprintf("dials port %d; works as configured", c.Port)
	default:
		return fmt.Sprintf("dials port %d; the hub listens on %d: needs a change (device show --transport %s)", c.Port, c.HubPort, c.Transport)
	}
}

// printConnection prints what the device page's Connect panel shows for
// one transport.
func printConnection(w io.Writer, c registry.Connection, ep registry.Endpoints) {
	fmt.Fprintf(w, "\n%s (%s)\n", c.Name, c.Transport)
	if !c.Served {
		fmt.Fprintf(w, "  not served: %s\n", c.Fix)
		return
	}
	if c.Works {
		fmt.Fprintln(w, "  works as configured")
	} else {
		fmt.Fprintf(w, "  does not work as configured: %s\n  to fix: %s\n", c.Problem, c.Fix)
	}
	fmt.Fprintf(w, "  port the SDKs dial: %d (the hub listens on %d)\n", c.Port, c.HubPort)
	fmt.Fprintf(w, "  connection string: %s\n", c.ConnectionString)
	if ep.CAFile != "" {
		fmt.Fprintf(w, "  CA certificate: %s (the snippets call it %s)\n", ep.CAFile, registry.CAFileName)
	}
	if c.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", c.Note)
	}
	for _, s := range c.Snippets {
		fmt.Fprintf(w, "\n--- %s ---\n", s.Title)
		if s.Note != "" {
			fmt.Fprintf(w, "(%s)\n", s.Note)
		}
		fmt.Fprint(w, s.Code)
	}
}

// deviceEndpoints are where the hub serves devices as it last ran on this
// data folder, or serve's defaults (recorded false) when none has.
func deviceEndpoints(ctx context.Context, d app.Store) (ep registry.Endpoints, recorded bool, err error) {
	s, err := d.Setting(ctx, db.SettingDeviceEndpoints, "")
	if err != nil || s == "" {
		return registry.DefaultEndpoints(), false, err
	}
	ep, err = registry.ParseEndpoints(s)
	return ep, err == nil, err
}

func deviceRemove(ctx context.Context, e env, args []string) error {
	return withDevice(ctx, e, args, "device rm", "device rm [--data DIR] <id>", nil, func(d app.Store, id string) error {
		if err := cliRegistry(d, e).Delete(ctx, actorCLI, id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "device %s removed\n", id)
		return nil
	})
}

func deviceSetEnabled(ctx context.Context, e env, args []string, enabled bool) error {
	verb := map[bool]string{true: "enable", false: "disable"}[enabled]
	return withDevice(ctx, e, args, "device "+verb, "device "+verb+" [--data DIR] <id>", nil, func(d app.Store, id string) error {
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
		func(d app.Store, id string) error {
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

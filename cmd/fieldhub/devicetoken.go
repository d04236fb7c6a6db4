package main

import (
	"context"
	"fieldhub/app"
	"flag"
	"fmt"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

// deviceToken prints a SAS token for a device, for curl users and scripts: the
// token is alone on the last line of stdout.
func deviceToken(ctx context.Context, e env, args []string) error {
	var ttl *time.Duration
	var which *string
	return withDevice(ctx, e, args, "device token", "device token [--data DIR] [--ttl 1h] [--key primary|secondary] <id>",
		func(fs *flag.FlagSet) {
			ttl = fs.Duration("ttl", time.Hour, "how long the token is valid")
			which = fs.String("key", db.PrimaryKey, "which device key signs the token: primary or secondary")
		},
		func(d app.Store, id string) error {
			if *ttl <= 0 {
				return usagef("device token: --ttl must be positive, got %s", *ttl)
			}
			dev, err := d.Device(ctx, id)
			if err != nil {
				return err
			}
			if dev.Auth.X509() {
				return fmt.Errorf("device token: device %s authenticates with X.509 certificates (%s), not SAS tokens; use curl --cert/--key with its certificate", id, dev.Auth.Type)
			}
			var key string
			switch *which {
			case db.PrimaryKey:
				key = dev.PrimaryKey
			case db.SecondaryKey:
				key = dev.SecondaryKey
			default:
				return usagef("device token: --key %q: use primary or secondary", *which)
			}
			host, err := deviceHost(ctx, d)
			if err != nil {
				return err
			}
			expiry := time.Now().Add(*ttl)
			token, err := auth.SignSAS(host+"/devices/"+dev.DeviceID, key, expiry)
			if err != nil {
				return fmt.Errorf("device token for %s: %w", id, err)
			}
			if !dev.Enabled {
				fmt.Fprintf(e.stderr, "warning: device %s is disabled; the hub refuses its tokens until it is enabled\n", id)
			}
			fmt.Fprintf(e.stderr, "SAS token for %s (host %s, %s key), valid until %s:\n", id, host, *which, expiry.Local().Format(time.DateTime))
			fmt.Fprintln(e.stdout, token)
			return nil
		})
}

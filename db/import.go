package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"fieldhub/auth"
)

// ImportDevice is one device of a bulk import: created with fresh keys when
// it is new, else its name, tags and enabled flag replaced (keys and
// authentication stay), unless the import gives its credentials.
type ImportDevice struct {
	DeviceID string
	Name     string
	Tags     map[string]string
	Enabled  bool
	// Credentials, when set, are the device's own (an admin export's
	// columns, so that an export restores a fleet): a new device gets them
	// instead of fresh keys, an existing one has its own replaced.
	Credentials *ImportCredentials
}

// ImportCredentials are how an imported device authenticates: SAS keys, or
// an X.509 registration (with thumbprints when selfSigned).
type ImportCredentials struct {
	Auth                     Authentication
	PrimaryKey, SecondaryKey string
}

// Check validates c and returns it with its authentication normalized. The
// field of an InvalidError is the import column to fix.
func (c ImportCredentials) Check() (ImportCredentials, error) {
	a, err := c.Auth.normalize()
	if err != nil {
		return c, err
	}
	c.Auth = a
	if a.X509() {
		if c.PrimaryKey != "" || c.SecondaryKey != "" {
			return c, invalid("primaryKey", "a %s device authenticates with certificates and has no keys; leave primaryKey and secondaryKey empty", a.Type)
		}
		return c, nil
	}
	if c.PrimaryKey == "" || c.SecondaryKey == "" {
		return c, invalid("primaryKey", "a sas device needs both keys, primaryKey and secondaryKey (leave both empty for fresh ones)")
	}
	if err := ValidateDeviceKey("primaryKey", c.PrimaryKey); err != nil {
		return c, err
	}
	return c, ValidateDeviceKey("secondaryKey", c.SecondaryKey)
}

// SameAs reports whether a stored device's credentials are c.
func (c ImportCredentials) SameAs(a Authentication, primary, secondary string) bool {
	return c.Auth == a && c.PrimaryKey == primary && c.SecondaryKey == secondary
}

// ImportCredentialsOf is how an import creates dev: with its credentials,
// or with fresh keys.
func ImportCredentialsOf(dev ImportDevice) ImportCredentials {
	if dev.Credentials != nil {
		return *dev.Credentials
	}
	return ImportCredentials{Auth: Authentication{Type: auth.AuthSAS}, PrimaryKey: NewDeviceKey(), SecondaryKey: NewDeviceKey()}
}

// Import actions, for each device.
const (
	ImportCreate    = "create"
	ImportUpdate    = "update"
	ImportUnchanged = "unchanged"
)

// ImportResult is what an import did (or, dry, would do): the action for
// each device in the order given, and the counts.
type ImportResult struct {
	Actions                     []string
	Created, Updated, Unchanged int
	// EnabledChanged are the devices whose enabled flag changed.
	EnabledChanged []string
	// CredentialsChanged are the existing devices whose keys or
	// certificate registration the import replaces: their connections
	// with the old ones stop.
	CredentialsChanged []string
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// ImportDevices applies devs in one transaction: all or none. Each must be
// valid (the caller checked it; the store checks again) and appear once.
// With dryRun nothing is written, and the result says what would be.
func (d *DB) ImportDevices(ctx context.Context, devs []ImportDevice, dryRun bool) (ImportResult, error) {
	res := ImportResult{Actions: make([]string, len(devs))}
	if err := CheckImport(devs); err != nil {
		return res, err
	}
	now := ms(d.Now())
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		return d.importTx(ctx, tx, devs, dryRun, now, &res)
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return ImportResult{}, fmt.Errorf("import devices: %w", err)
	}
	return res, nil
}

// CheckImport checks every device of an import (each store calls it
// before writing): valid ids, names and tags, each id once.
func CheckImport(devs []ImportDevice) error {
	seen := make(map[string]bool, len(devs))
	for _, dev := range devs {
		if seen[dev.DeviceID] {
			return invalid("id", "device %q appears twice in the import", dev.DeviceID)
		}
		seen[dev.DeviceID] = true
		if err := ValidateDeviceID(dev.DeviceID); err != nil {
			return err
		}
		if len(dev.Name) > MaxNameLength {
			return invalid("name", "name of %q is longer than %d characters", dev.DeviceID, MaxNameLength)
		}
		if err := validateTags(dev.Tags); err != nil {
			return err
		}
		if dev.Credentials != nil {
			c, err := dev.Credentials.Check()
			if err != nil {
				return err
			}
			if c != *dev.Credentials {
				return invalid("authentication", "credentials of %q are not normalized (ImportCredentials.Check)", dev.DeviceID)
			}
		}
	}
	return nil
}

func (d *DB) importTx(ctx context.Context, tx *sql.Tx, devs []ImportDevice, dryRun bool, now int64, res *ImportResult) error {
	{
		find, err := tx.PrepareContext(ctx, `SELECT name, tags, enabled, primary_key, secondary_key, auth_type, primary_thumbprint,
			secondary_thumbprint FROM devices WHERE device_id = ?`)
		if err != nil {
			return err
		}
		defer find.Close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, auth_type,
			primary_thumbprint, secondary_thumbprint, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		update, err := tx.PrepareContext(ctx, `UPDATE devices SET name = ?, tags = ?, enabled = ?, updated_at = ? WHERE device_id = ?`)
		if err != nil {
			return err
		}
		defer update.Close()
		setCredentials, err := tx.PrepareContext(ctx, `UPDATE devices SET primary_key = ?, secondary_key = ?, auth_type = ?,
			primary_thumbprint = ?, secondary_thumbprint = ? WHERE device_id = ?`)
		if err != nil {
			return err
		}
		defer setCredentials.Close()
		for i, dev := range devs {
			if dev.Tags == nil {
				dev.Tags = map[string]string{}
			}
			tags, _ := json.Marshal(dev.Tags)
			var (
				name, oldTags      string
				enabled            bool
				primary, secondary string
				oldAuth            Authentication
			)
			err := find.QueryRowContext(ctx, dev.DeviceID).Scan(&name, &oldTags, &enabled, &primary, &secondary,
				&oldAuth.Type, &oldAuth.PrimaryThumbprint, &oldAuth.SecondaryThumbprint)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res.Actions[i] = ImportCreate
				res.Created++
				if !dryRun {
					c := ImportCredentialsOf(dev)
					if _, err := insert.ExecContext(ctx, dev.DeviceID, dev.Name, string(tags), c.PrimaryKey, c.SecondaryKey,
						c.Auth.Type, c.Auth.PrimaryThumbprint, c.Auth.SecondaryThumbprint, dev.Enabled, now, now); err != nil {
						return err
					}
				}
				continue
			case err != nil:
				return err
			}
			var old map[string]string
			_ = json.Unmarshal([]byte(oldTags), &old)
			newCredentials := dev.Credentials != nil && !dev.Credentials.SameAs(oldAuth, primary, secondary)
			if name == dev.Name && enabled == dev.Enabled && maps.Equal(old, dev.Tags) && !newCredentials {
				res.Actions[i] = ImportUnchanged
				res.Unchanged++
				continue
			}
			res.Actions[i] = ImportUpdate
			res.Updated++
			if enabled != dev.Enabled {
				res.EnabledChanged = append(res.EnabledChanged, dev.DeviceID)
			}
			if newCredentials {
				res.CredentialsChanged = append(res.CredentialsChanged, dev.DeviceID)
			}
			if !dryRun {
				if _, err := update.ExecContext(ctx, dev.Name, string(tags), dev.Enabled, now, dev.DeviceID); err != nil {
					return err
				}
				if c := dev.Credentials; newCredentials {
					if _, err := setCredentials.ExecContext(ctx, c.PrimaryKey, c.SecondaryKey, c.Auth.Type, c.Auth.PrimaryThumbprint,
						c.Auth.SecondaryThumbprint, dev.DeviceID); err != nil {
						return err
					}
				}
			}
		}
		if dryRun {
			return errDryRun
		}
		return nil
	}
}

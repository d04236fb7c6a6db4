package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
)

// ImportDevice is one device of a bulk import: created with fresh keys when
// it is new, else its name, tags and enabled flag replaced (keys and
// authentication stay).
type ImportDevice struct {
	DeviceID string
	Name     string
	Tags     map[string]string
	Enabled  bool
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
	}
	return nil
}

func (d *DB) importTx(ctx context.Context, tx *sql.Tx, devs []ImportDevice, dryRun bool, now int64, res *ImportResult) error {
	{
		find, err := tx.PrepareContext(ctx, `SELECT name, tags, enabled FROM devices WHERE device_id = ?`)
		if err != nil {
			return err
		}
		defer find.Close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, enabled,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		update, err := tx.PrepareContext(ctx, `UPDATE devices SET name = ?, tags = ?, enabled = ?, updated_at = ? WHERE device_id = ?`)
		if err != nil {
			return err
		}
		defer update.Close()
		for i, dev := range devs {
			if dev.Tags == nil {
				dev.Tags = map[string]string{}
			}
			tags, _ := json.Marshal(dev.Tags)
			var (
				name, oldTags string
				enabled       bool
			)
			err := find.QueryRowContext(ctx, dev.DeviceID).Scan(&name, &oldTags, &enabled)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res.Actions[i] = ImportCreate
				res.Created++
				if !dryRun {
					if _, err := insert.ExecContext(ctx, dev.DeviceID, dev.Name, string(tags), NewDeviceKey(), NewDeviceKey(),
						dev.Enabled, now, now); err != nil {
						return err
					}
				}
				continue
			case err != nil:
				return err
			}
			var old map[string]string
			_ = json.Unmarshal([]byte(oldTags), &old)
			if name == dev.Name && enabled == dev.Enabled && maps.Equal(old, dev.Tags) {
				res.Actions[i] = ImportUnchanged
				res.Unchanged++
				continue
			}
			res.Actions[i] = ImportUpdate
			res.Updated++
			if enabled != dev.Enabled {
				res.EnabledChanged = append(res.EnabledChanged, dev.DeviceID)
			}
			if !dryRun {
				if _, err := update.ExecContext(ctx, dev.Name, string(tags), dev.Enabled, now, dev.DeviceID); err != nil {
					return err
				}
			}
		}
		if dryRun {
			return errDryRun
		}
		return nil
	}
}

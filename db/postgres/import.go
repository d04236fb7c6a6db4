package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"

	"fieldhub/db"
)

// ImportDevices applies a bulk import in one transaction, as db.DB does.
func (s *Store) ImportDevices(ctx context.Context, devs []db.ImportDevice, dryRun bool) (db.ImportResult, error) {
	res := db.ImportResult{Actions: make([]string, len(devs))}
	if err := db.CheckImport(devs); err != nil {
		return res, err
	}
	now := ms(s.Now())
	errDry := errors.New("dry run")
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for i, dev := range devs {
			if dev.Tags == nil {
				dev.Tags = map[string]string{}
			}
			var (
				name, oldTags      string
				enabled            int
				primary, secondary string
				oldAuth            db.Authentication
			)
			err := tx.QueryRow(ctx, `SELECT name, tags, enabled, primary_key, secondary_key, auth_type, primary_thumbprint,
				secondary_thumbprint FROM devices WHERE device_id = $1 FOR NO KEY UPDATE`, dev.DeviceID).
				Scan(&name, &oldTags, &enabled, &primary, &secondary, &oldAuth.Type, &oldAuth.PrimaryThumbprint, &oldAuth.SecondaryThumbprint)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				res.Actions[i] = db.ImportCreate
				res.Created++
				if !dryRun {
					c := db.ImportCredentialsOf(dev)
					if _, err := tx.Exec(ctx, `INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, auth_type,
						primary_thumbprint, secondary_thumbprint, enabled, created_at, updated_at)
						VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`, dev.DeviceID, dev.Name, db.EncodeTags(dev.Tags),
						c.PrimaryKey, c.SecondaryKey, c.Auth.Type, c.Auth.PrimaryThumbprint, c.Auth.SecondaryThumbprint,
						boolInt(dev.Enabled), now); err != nil {
						return err
					}
				}
				continue
			case err != nil:
				return err
			}
			old, _ := db.DecodeTags(dev.DeviceID, oldTags)
			newCredentials := dev.Credentials != nil && !dev.Credentials.SameAs(oldAuth, primary, secondary)
			if name == dev.Name && (enabled == 1) == dev.Enabled && maps.Equal(old, dev.Tags) && !newCredentials {
				res.Actions[i] = db.ImportUnchanged
				res.Unchanged++
				continue
			}
			res.Actions[i] = db.ImportUpdate
			res.Updated++
			if (enabled == 1) != dev.Enabled {
				res.EnabledChanged = append(res.EnabledChanged, dev.DeviceID)
			}
			if newCredentials {
				res.CredentialsChanged = append(res.CredentialsChanged, dev.DeviceID)
			}
			if !dryRun {
				if _, err := tx.Exec(ctx, `UPDATE devices SET name = $1, tags = $2, enabled = $3, updated_at = $4 WHERE device_id = $5`,
					dev.Name, db.EncodeTags(dev.Tags), boolInt(dev.Enabled), now, dev.DeviceID); err != nil {
					return err
				}
				if c := dev.Credentials; newCredentials {
					if _, err := tx.Exec(ctx, `UPDATE devices SET primary_key = $1, secondary_key = $2, auth_type = $3,
						primary_thumbprint = $4, secondary_thumbprint = $5 WHERE device_id = $6`, c.PrimaryKey, c.SecondaryKey,
						c.Auth.Type, c.Auth.PrimaryThumbprint, c.Auth.SecondaryThumbprint, dev.DeviceID); err != nil {
						return err
					}
				}
			}
		}
		if dryRun {
			return errDry
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDry) {
		return db.ImportResult{}, fmt.Errorf("import devices: %w", err)
	}
	return res, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

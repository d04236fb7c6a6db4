package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

const twinColumns = `desired, desired_version, reported, reported_version, updated_at`

// readTwin reads a device's stored twin; a twin never written is empty at
// version 1.
func readTwin(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, dev int64) (db.Twin, error) {
	var (
		desired, reported string
		dv, rv, updated   int64
	)
	err := q.QueryRow(ctx, `SELECT `+twinColumns+` FROM twins WHERE device_id = $1`, dev).Scan(&desired, &dv, &reported, &rv, &updated)
	if err == pgx.ErrNoRows {
		return db.EmptyTwin(), nil
	}
	if err != nil {
		return db.Twin{}, err
	}
	return db.DecodeTwin(desired, reported, dv, rv, updated)
}

// Twin reads a device's twin.
func (s *Store) Twin(ctx context.Context, deviceID string) (db.Twin, error) {
	dev, err := s.Device(ctx, deviceID)
	if err != nil {
		return db.Twin{}, err
	}
	tw, err := readTwin(ctx, s.pool, dev.ID)
	if err != nil {
		return db.Twin{}, fmt.Errorf("twin of %q: %w", deviceID, err)
	}
	tw.DeviceID, tw.Tags = dev.DeviceID, dev.Tags
	return tw, nil
}

// PatchTwin merges patch into one section of a device's twin and bumps that
// section's version (db.Twin.Patch has the rules). The device's row is held
// while the twin is read and written, so patches from several hubs apply
// one after the other and every version is given once.
func (s *Store) PatchTwin(ctx context.Context, deviceID, section string, patch map[string]any, ifVersion int64, maxBytes int) (db.Twin, error) {
	if err := db.ValidateTwinSection(section); err != nil {
		return db.Twin{}, err
	}
	now := ms(s.Now())
	var tw db.Twin
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			id   int64
			tags string
		)
		err := tx.QueryRow(ctx, `SELECT id, tags FROM devices WHERE device_id = $1 FOR NO KEY UPDATE`, deviceID).Scan(&id, &tags)
		if err := translate(err); err != nil {
			return fmt.Errorf("device %q: %w", deviceID, err)
		}
		if tw, err = readTwin(ctx, tx, id); err != nil {
			return err
		}
		tw.DeviceID = deviceID
		if tw.Tags, err = db.DecodeTags(deviceID, tags); err != nil {
			return err
		}
		if tw, err = tw.Patch(section, patch, ifVersion, maxBytes); err != nil {
			return err
		}
		desired, _ := json.Marshal(tw.Desired)
		reported, _ := json.Marshal(tw.Reported)
		_, err = tx.Exec(ctx, `INSERT INTO twins (device_id, desired, desired_version, reported, reported_version, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (device_id) DO UPDATE SET desired = excluded.desired, desired_version = excluded.desired_version,
				reported = excluded.reported, reported_version = excluded.reported_version, updated_at = excluded.updated_at`,
			id, string(desired), tw.DesiredVersion, string(reported), tw.ReportedVersion, now)
		return translate(err)
	})
	if err != nil {
		return db.Twin{}, db.WrapUnlessNotFound(fmt.Sprintf("patch %s properties of %q", section, deviceID), err)
	}
	tw.UpdatedAt = storage.FromUnixMS(now)
	return tw, nil
}

package postgres

import (
	"context"
	"fmt"
	"strings"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// CreateDevice registers a device: with fresh keys, or without keys when it
// authenticates with X.509.
func (s *Store) CreateDevice(ctx context.Context, nd db.NewDevice) (db.Device, error) {
	dev, err := nd.Prepare(s.Now())
	if err != nil {
		return db.Device{}, err
	}
	a := dev.Auth
	err = s.pool.QueryRow(ctx, `INSERT INTO devices
		(device_id, name, tags, primary_key, secondary_key, auth_type, primary_thumbprint, secondary_thumbprint, enabled, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) RETURNING id`,
		dev.DeviceID, dev.Name, db.EncodeTags(dev.Tags), dev.PrimaryKey, dev.SecondaryKey,
		a.Type, a.PrimaryThumbprint, a.SecondaryThumbprint, ms(dev.CreatedAt)).Scan(&dev.ID)
	if err := translate(err); err != nil {
		if err == storage.ErrConflict {
			return db.Device{}, fmt.Errorf("device %q: %w", nd.DeviceID, storage.ErrConflict)
		}
		return db.Device{}, fmt.Errorf("create device: %w", err)
	}
	return dev, nil
}

// Device finds a device by its device id.
func (s *Store) Device(ctx context.Context, deviceID string) (db.Device, error) {
	dev, err := db.ScanDevice(s.pool.QueryRow(ctx, `SELECT `+db.DeviceColumns+` FROM devices WHERE device_id = $1`, deviceID))
	if err := translate(err); err != nil {
		return db.Device{}, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return dev, nil
}

// where is f's WHERE clause and its arguments. Like SQLite's LIKE, ILIKE
// ignores letter case.
func where(f db.DeviceFilter, cutoff int64) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		p := arg("%" + db.EscapeLike(q) + "%")
		conds = append(conds, `(device_id ILIKE `+p+` ESCAPE '\' OR name ILIKE `+p+` ESCAPE '\' OR tags ILIKE `+p+` ESCAPE '\')`)
	}
	switch f.Status {
	case db.StatusOnline:
		conds = append(conds, `enabled = 1 AND `+db.OnlineSQL(arg(cutoff)))
	case db.StatusOffline:
		conds = append(conds, `enabled = 1 AND NOT `+db.OnlineSQL(arg(cutoff)))
	case db.StatusDisabled:
		conds = append(conds, `enabled = 0`)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Devices lists devices matching f, ordered by device id (bytes, as
// SQLite orders them, whatever the database's collation), and how many
// match in all.
func (s *Store) Devices(ctx context.Context, f db.DeviceFilter) ([]db.Device, int, error) {
	if err := db.ValidateStatusFilter(f.Status); err != nil {
		return nil, 0, err
	}
	w, args := where(f, db.OnlineCutoff(s.Now()))
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM devices`+w, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count devices: %w", err)
	}
	q := `SELECT ` + db.DeviceColumns + ` FROM devices` + w + ` ORDER BY device_id COLLATE "C"`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", f.Limit, max(f.Offset, 0))
	}
	r, err := s.pool.Query(ctx, q, args...)
	out, err := rows(r, err, func(r pgx.Rows) (db.Device, error) { return db.ScanDevice(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("list devices: %w", err)
	}
	return out, total, nil
}

// FleetCounts counts devices by status.
func (s *Store) FleetCounts(ctx context.Context) (db.FleetCounts, error) {
	var c db.FleetCounts
	online := db.OnlineSQL("$1")
	err := s.pool.QueryRow(ctx, `SELECT
		COUNT(*) FILTER (WHERE enabled = 1 AND `+online+`),
		COUNT(*) FILTER (WHERE enabled = 1 AND NOT `+online+`),
		COUNT(*) FILTER (WHERE enabled = 0) FROM devices`, db.OnlineCutoff(s.Now())).Scan(&c.Online, &c.Offline, &c.Disabled)
	if err != nil {
		return c, fmt.Errorf("count fleet: %w", err)
	}
	return c, nil
}

// UpdateDevice applies u and returns the device as stored.
func (s *Store) UpdateDevice(ctx context.Context, deviceID string, u db.DeviceUpdate) (db.Device, error) {
	u, err := u.Check()
	if err != nil {
		return db.Device{}, err
	}
	var dev db.Device
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		dev, err = db.ScanDevice(tx.QueryRow(ctx, `SELECT `+db.DeviceColumns+` FROM devices WHERE device_id = $1 FOR UPDATE`, deviceID))
		if err != nil {
			return translate(err)
		}
		dev = u.Apply(dev, s.Now())
		enabled := 0
		if dev.Enabled {
			enabled = 1
		}
		_, err = tx.Exec(ctx, `UPDATE devices SET name = $1, tags = $2, enabled = $3, primary_key = $4, secondary_key = $5,
			auth_type = $6, primary_thumbprint = $7, secondary_thumbprint = $8, updated_at = $9 WHERE id = $10`,
			dev.Name, db.EncodeTags(dev.Tags), enabled, dev.PrimaryKey, dev.SecondaryKey,
			dev.Auth.Type, dev.Auth.PrimaryThumbprint, dev.Auth.SecondaryThumbprint, ms(dev.UpdatedAt), dev.ID)
		return translate(err)
	})
	if err != nil {
		return db.Device{}, fmt.Errorf("update device %q: %w", deviceID, err)
	}
	return dev, nil
}

// RotateDeviceKey replaces one key with a fresh one and returns the device.
func (s *Store) RotateDeviceKey(ctx context.Context, deviceID, which string) (db.Device, error) {
	col, err := db.KeyColumn(which)
	if err != nil {
		return db.Device{}, err
	}
	dev, err := db.ScanDevice(s.pool.QueryRow(ctx, `UPDATE devices SET `+col+` = $1, updated_at = $2
		WHERE device_id = $3 AND auth_type = 'sas' RETURNING `+db.DeviceColumns, db.NewDeviceKey(), ms(s.Now()), deviceID))
	if err := translate(err); err == storage.ErrNotFound {
		dev, err := s.Device(ctx, deviceID)
		if err != nil {
			return db.Device{}, err
		}
		return db.Device{}, db.NoKeysError(dev)
	} else if err != nil {
		return db.Device{}, fmt.Errorf("rotate key of %q: %w", deviceID, err)
	}
	return dev, nil
}

// DeleteDevice removes a device and, through foreign keys, everything stored for it.
func (s *Store) DeleteDevice(ctx context.Context, deviceID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE device_id = $1`, deviceID)
	if err != nil {
		return fmt.Errorf("delete device %q: %w", deviceID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
	}
	return nil
}

// ResetConnections marks every device disconnected; called at start, since
// no connection survives a restart.
func (s *Store) ResetConnections(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `UPDATE devices SET connected = 0, disconnected_at = last_activity_at WHERE connected = 1`); err != nil {
		return fmt.Errorf("reset connections: %w", err)
	}
	return nil
}

// AllDeviceCredentials reads every device's enabled flag and keys in one
// narrow scan.
func (s *Store) AllDeviceCredentials(ctx context.Context) (map[string]db.DeviceCredentials, error) {
	r, err := s.pool.Query(ctx, `SELECT device_id, enabled = 1, primary_key, secondary_key,
		auth_type, primary_thumbprint, secondary_thumbprint FROM devices`)
	if err != nil {
		return nil, fmt.Errorf("read device keys: %w", err)
	}
	defer r.Close()
	out := map[string]db.DeviceCredentials{}
	for r.Next() {
		var id string
		var c db.DeviceCredentials
		if err := r.Scan(&id, &c.Enabled, &c.Keys[0], &c.Keys[1], &c.Auth.Type, &c.Auth.PrimaryThumbprint, &c.Auth.SecondaryThumbprint); err != nil {
			return nil, fmt.Errorf("read device keys: %w", err)
		}
		out[id] = c
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read device keys: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

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

// CredentialsVersion implements registry.Store: the sequence the
// credential triggers move (0012_credentials_version.sql).
func (s *Store) CredentialsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM credentials_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read credentials version: %w", err)
	}
	return v, nil
}

// Device finds a device by its device id.
func (s *Store) Device(ctx context.Context, deviceID string) (db.Device, error) {
	dev, err := db.ScanDevice(s.pool.QueryRow(ctx, `SELECT `+db.DeviceColumns+` FROM devices WHERE device_id = $1`, deviceID))
	if err := translate(err); err != nil {
		return db.Device{}, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return dev, nil
}

// where is f's WHERE clause and its arguments (the search as db's
// ParseSearch reads it: tags exactly through jsonb_each_text, text in any
// letter case), with argument numbers after those already in args.
func where(f db.DeviceFilter, cutoff int64, args []any) (string, []any, error) {
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	terms, err := db.ParseSearch(f.Query)
	if err != nil {
		return "", nil, err
	}
	for _, t := range terms {
		if t.Tag {
			conds = append(conds, `EXISTS (SELECT 1 FROM jsonb_each_text(devices.tags::jsonb) t WHERE t.key = `+arg(t.Key)+` AND t.value = `+arg(t.Value)+`)`)
			continue
		}
		p := arg("%" + db.EscapeLike(t.Text) + "%")
		conds = append(conds, `(device_id ILIKE `+p+` ESCAPE '\' OR name ILIKE `+p+` ESCAPE '\'
			OR EXISTS (SELECT 1 FROM jsonb_each_text(devices.tags::jsonb) t WHERE t.key ILIKE `+p+` ESCAPE '\' OR t.value ILIKE `+p+` ESCAPE '\'))`)
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
		return "", args, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// orderBy is f's ORDER BY, as SQLite's store orders (db.DeviceFilter):
// the sort key, then the device id in bytes, both in f's direction.
func orderBy(f db.DeviceFilter, cutoff int64, args []any) (string, []any) {
	dir := ""
	if f.Desc {
		dir = " DESC"
	}
	key := ""
	switch f.Sort {
	case db.DeviceSortName:
		key = `lower(name) COLLATE "C"`
	case db.DeviceSortStatus:
		args = append(args, cutoff)
		key = `(CASE WHEN enabled = 0 THEN 2 WHEN ` + db.OnlineSQL(fmt.Sprintf("$%d", len(args))) + ` THEN 0 ELSE 1 END)`
	case db.DeviceSortLastActivity:
		key = `COALESCE(last_activity_at, 0)`
	}
	id := `device_id COLLATE "C"` + dir
	if key == "" {
		return id, args
	}
	return key + dir + ", " + id, args
}

// list reads the devices f selects in f's order at now, limit (0: all)
// from offset.
func (s *Store) list(ctx context.Context, f db.DeviceFilter, now time.Time, limit, offset int) ([]db.Device, error) {
	cutoff := db.OnlineCutoff(now)
	w, args, err := where(f, cutoff, nil)
	if err != nil {
		return nil, err
	}
	order, args := orderBy(f, cutoff, args)
	q := `SELECT ` + db.DeviceColumns + ` FROM devices` + w + ` ORDER BY ` + order
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", limit, max(offset, 0))
	}
	r, err := s.pool.Query(ctx, q, args...)
	out, err := rows(r, err, func(r pgx.Rows) (db.Device, error) { return db.ScanDevice(r) })
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// Devices lists devices matching f in f's order, and how many match in all.
func (s *Store) Devices(ctx context.Context, f db.DeviceFilter) ([]db.Device, int, error) {
	if err := f.Validate(); err != nil {
		return nil, 0, err
	}
	now := s.Now()
	w, args, err := where(f, db.OnlineCutoff(now), nil)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM devices`+w, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count devices: %w", err)
	}
	out, err := s.list(ctx, f, now, f.Limit, f.Offset)
	return out, total, err
}

// exportBatch is how many devices EachDevice reads per query, so that a
// slow reader of an export holds no long query open.
const exportBatch = 500

// EachDevice calls fn for every device matching f (Offset and Limit
// included), in f's order at now, reading in batches.
func (s *Store) EachDevice(ctx context.Context, f db.DeviceFilter, now time.Time, fn func(db.Device) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	offset, left := max(f.Offset, 0), f.Limit
	for {
		n := exportBatch
		if f.Limit > 0 {
			if left <= 0 {
				return nil
			}
			n = min(n, left)
		}
		batch, err := s.list(ctx, f, now, n, offset)
		if err != nil {
			return err
		}
		for _, d := range batch {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(batch) < n {
			return nil
		}
		offset += n
		left -= n
	}
}

// FleetCounts counts devices by status.
func (s *Store) FleetCounts(ctx context.Context) (db.FleetCounts, error) {
	var c db.FleetCounts
	online := db.OnlineSQL("$1")
	err := s.pool.QueryRow(ctx, `SELECT
		COUNT(*) FILTER (WHERE enabled = 1 AND `+online+`),
		COUNT(*) FILTER (WHERE enabled = 1 AND NOT `+online+`),
		COUNT(*) FILTER (WHERE enabled = 0),
		COUNT(*) FILTER (WHERE enabled = 1 AND connected = 1) FROM devices`, db.OnlineCutoff(s.Now())).Scan(&c.Online, &c.Offline, &c.Disabled, &c.Connected)
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

package db

import (
	"context"
	"fieldhub/storage"
	"fmt"
)

// Setting keys.
const (
	// SettingDeviceHost is the HostName (host[:port]) devices dial, recorded at start (package app).
	SettingDeviceHost = "device_host"
	// SettingDeviceEndpoints is where the hub serves devices (registry.Endpoints
	// as JSON), recorded at start (package app).
	SettingDeviceEndpoints = "device_endpoints"
	// SettingQuerySecret signs fleet queries' continuation tokens (base64), so that they outlive a restart.
	SettingQuerySecret = "query_secret"
)

// Setting reads a setting, or def when it is not set.
func (d *DB) Setting(ctx context.Context, key, def string) (string, error) {
	var v string
	err := d.read.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if err := translate(err); err == storage.ErrNotFound {
		return def, nil
	} else if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (d *DB) SetSetting(ctx context.Context, key, value string) error {
	_, err := d.write.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write setting %s: %w", key, err)
	}
	return nil
}

package db

import (
	"context"
	"database/sql"
	"fmt"
)

// Subscription is an MQTT subscription of a persistent device session.
type Subscription struct {
	Filter string
	QoS    byte
}

// StoreSubscriptions records granted subscriptions of a persistent session.
func (d *DB) StoreSubscriptions(ctx context.Context, deviceID string, subs []Subscription) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		for _, sub := range subs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mqtt_subscriptions (device_id, filter, qos)
				SELECT id, ?, ? FROM devices WHERE device_id = ?
				ON CONFLICT (device_id, filter) DO UPDATE SET qos = excluded.qos`, sub.Filter, sub.QoS, deviceID); err != nil {
				return fmt.Errorf("subscription %q: %w", sub.Filter, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store subscriptions of %q: %w", deviceID, err)
	}
	return nil
}

// ForgetSubscriptions deletes the given filters of a device, or all of them when filters is nil.
func (d *DB) ForgetSubscriptions(ctx context.Context, deviceID string, filters []string) error {
	const byDevice = `device_id = (SELECT id FROM devices WHERE device_id = ?)`
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		if filters == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice, deviceID)
			return err
		}
		for _, f := range filters {
			if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice+` AND filter = ?`, deviceID, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget subscriptions of %q: %w", deviceID, err)
	}
	return nil
}

// Subscriptions lists the stored subscriptions of a device.
func (d *DB) Subscriptions(ctx context.Context, deviceID string) ([]Subscription, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT s.filter, s.qos FROM mqtt_subscriptions s
		JOIN devices d ON d.id = s.device_id WHERE d.device_id = ?`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var subs []Subscription
	for rows.Next() {
		var sub Subscription
		if err := rows.Scan(&sub.Filter, &sub.QoS); err != nil {
			return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
		}
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
	}
	return subs, nil
}

// DeviceCredentials is what a live connection's authentication depends on.
type DeviceCredentials struct {
	Enabled bool
	Keys    [2]string
	Auth    Authentication
}

// AllDeviceCredentials reads every device's enabled flag and keys in one narrow
// scan; cheaper than a query per connection, even for 10,000 devices.
func (d *DB) AllDeviceCredentials(ctx context.Context) (map[string]DeviceCredentials, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT device_id, enabled, primary_key, secondary_key,
		auth_type, primary_thumbprint, secondary_thumbprint FROM devices`)
	if err != nil {
		return nil, fmt.Errorf("read device keys: %w", err)
	}
	defer rows.Close()
	out := map[string]DeviceCredentials{}
	for rows.Next() {
		var id string
		var c DeviceCredentials
		if err := rows.Scan(&id, &c.Enabled, &c.Keys[0], &c.Keys[1], &c.Auth.Type, &c.Auth.PrimaryThumbprint, &c.Auth.SecondaryThumbprint); err != nil {
			return nil, fmt.Errorf("read device keys: %w", err)
		}
		out[id] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read device keys: %w", err)
	}
	return out, nil
}

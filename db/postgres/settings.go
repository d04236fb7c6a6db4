package postgres

import (
	"context"
	"fmt"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// Setting reads a setting, or def when it is not set.
func (s *Store) Setting(ctx context.Context, key, def string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if err := translate(err); err == storage.ErrNotFound {
		return def, nil
	} else if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write setting %s: %w", key, translate(err))
	}
	return nil
}

// StoreSubscriptions records granted subscriptions of a persistent session.
func (s *Store) StoreSubscriptions(ctx context.Context, deviceID string, subs []db.Subscription) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, sub := range subs {
			if _, err := tx.Exec(ctx, `INSERT INTO mqtt_subscriptions (device_id, filter, qos)
				SELECT id, $1, $2 FROM devices WHERE device_id = $3
				ON CONFLICT (device_id, filter) DO UPDATE SET qos = excluded.qos`, sub.Filter, int16(sub.QoS), deviceID); err != nil {
				return fmt.Errorf("subscription %q: %w", sub.Filter, translate(err))
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
func (s *Store) ForgetSubscriptions(ctx context.Context, deviceID string, filters []string) error {
	const byDevice = `device_id = (SELECT id FROM devices WHERE device_id = $1)`
	var err error
	if filters == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice, deviceID)
	} else {
		_, err = s.pool.Exec(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice+` AND filter = ANY($2)`, deviceID, filters)
	}
	if err != nil {
		return fmt.Errorf("forget subscriptions of %q: %w", deviceID, translate(err))
	}
	return nil
}

// Subscriptions lists the stored subscriptions of a device.
func (s *Store) Subscriptions(ctx context.Context, deviceID string) ([]db.Subscription, error) {
	r, err := s.pool.Query(ctx, `SELECT s.filter, s.qos FROM mqtt_subscriptions s
		JOIN devices d ON d.id = s.device_id WHERE d.device_id = $1 ORDER BY s.filter COLLATE "C"`, deviceID)
	subs, err := rows(r, err, func(r pgx.Rows) (db.Subscription, error) {
		var sub db.Subscription
		var qos int16
		err := r.Scan(&sub.Filter, &qos)
		sub.QoS = byte(qos)
		return sub, err
	})
	if err != nil {
		return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
	}
	return subs, nil
}

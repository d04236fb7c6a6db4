package mqtt

import (
	"context"
	"fmt"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Persistent sessions. mochi keeps a clean=false session (its
// subscriptions) in memory across reconnects, which covers the SDKs' token
// renewal. The subscriptions are also written to the database and restored
// when a device reconnects to a hub that has restarted since.

// restoreSession runs before mochi takes over any session in memory: a
// clean session forgets the stored subscriptions; a persistent one that
// mochi no longer has gets them back from the database.
func (b *Broker) restoreSession(cl *mochi.Client, pk packets.Packet) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if pk.Connect.Clean {
		if err := b.forgetSubscriptions(ctx, cl.ID, nil); err != nil {
			b.log.Error("forget stored subscriptions", "device", cl.ID, "err", err)
		}
		return
	}
	if _, ok := b.server.Clients.Get(cl.ID); ok {
		return // mochi still holds the session and hands it over
	}
	subs, err := b.storedSubscriptions(ctx, cl.ID)
	if err != nil {
		b.log.Error("restore stored subscriptions", "device", cl.ID, "err", err)
		return
	}
	for _, sub := range subs {
		if AllowedSubscription(cl.ID, sub.Filter) != nil {
			continue
		}
		b.server.Topics.Subscribe(cl.ID, sub)
		cl.State.Subscriptions.Add(sub.Filter, sub)
	}
}

// storeSubscriptions records granted subscriptions of a persistent session.
func (b *Broker) storeSubscriptions(ctx context.Context, deviceID string, subs []packets.Subscription) error {
	tx, err := b.cfg.DB.Writer().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store subscriptions of %q: %w", deviceID, err)
	}
	defer tx.Rollback()
	for _, sub := range subs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mqtt_subscriptions (device_id, filter, qos)
			SELECT id, ?, ? FROM devices WHERE device_id = ?
			ON CONFLICT (device_id, filter) DO UPDATE SET qos = excluded.qos`, sub.Filter, sub.Qos, deviceID); err != nil {
			return fmt.Errorf("store subscription %q of %q: %w", sub.Filter, deviceID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store subscriptions of %q: %w", deviceID, err)
	}
	return nil
}

// forgetSubscriptions deletes the given filters, or all with nil.
func (b *Broker) forgetSubscriptions(ctx context.Context, deviceID string, filters []string) error {
	const byDevice = `device_id = (SELECT id FROM devices WHERE device_id = ?)`
	if filters == nil {
		if _, err := b.cfg.DB.Writer().ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice, deviceID); err != nil {
			return fmt.Errorf("forget subscriptions of %q: %w", deviceID, err)
		}
		return nil
	}
	for _, f := range filters {
		if _, err := b.cfg.DB.Writer().ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE `+byDevice+` AND filter = ?`, deviceID, f); err != nil {
			return fmt.Errorf("forget subscription %q of %q: %w", f, deviceID, err)
		}
	}
	return nil
}

func (b *Broker) storedSubscriptions(ctx context.Context, deviceID string) ([]packets.Subscription, error) {
	rows, err := b.cfg.DB.Reader().QueryContext(ctx, `SELECT s.filter, s.qos FROM mqtt_subscriptions s
		JOIN devices d ON d.id = s.device_id WHERE d.device_id = ?`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var subs []packets.Subscription
	for rows.Next() {
		var sub packets.Subscription
		if err := rows.Scan(&sub.Filter, &sub.Qos); err != nil {
			return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
		}
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read subscriptions of %q: %w", deviceID, err)
	}
	return subs, nil
}

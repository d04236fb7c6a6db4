package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"fieldhub/storage"
)

// A device's live connection is held by one instance (node) of the hub.
// These methods keep which one, so that instances sharing a store find the
// device's connection (package bus) and a connection on one instance does
// not mark offline a device that has moved to another.

// SetDeviceConnection records that node's connection of a device opened
// (connected) or closed, and returns the node that held the device's
// connection before: "" when none, node itself on a reconnect to the same
// instance, another node when the device moved (its old session there must
// be taken over). A close is recorded only while node still holds the
// connection: the close of an old connection on another instance does not
// undo the newer one; then the holder is returned unchanged. An unknown
// device is storage.ErrNotFound.
func (d *DB) SetDeviceConnection(ctx context.Context, deviceID, node string, connected bool) (string, error) {
	var previous string
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var held sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT CASE WHEN connected = 1 THEN connected_node END FROM devices WHERE device_id = ?`, deviceID).Scan(&held)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		previous = held.String
		now := ms(d.Now())
		switch {
		case connected:
			_, err = tx.ExecContext(ctx, `UPDATE devices SET connected = 1, connected_node = ?1, last_activity_at = ?2
				WHERE device_id = ?3`, node, now, deviceID)
		case previous == node || previous == "":
			_, err = tx.ExecContext(ctx, `UPDATE devices SET connected = 0, connected_node = NULL, last_activity_at = ?1,
				disconnected_at = ?1 WHERE device_id = ?2`, now, deviceID)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("set device %q connected=%v on %q: %w", deviceID, connected, node, err)
	}
	return previous, nil
}

// DeviceConnectionNode is the node holding the device's live connection, ""
// when it has none. An unknown device is storage.ErrNotFound.
func (d *DB) DeviceConnectionNode(ctx context.Context, deviceID string) (string, error) {
	var node sql.NullString
	err := d.read.QueryRowContext(ctx, `SELECT CASE WHEN connected = 1 THEN connected_node END FROM devices WHERE device_id = ?`,
		deviceID).Scan(&node)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("connection node of device %q: %w", deviceID, err)
	}
	return node.String, nil
}

// ResetNodeConnections marks disconnected the devices whose connection node
// held: at the start of an instance of a cluster, whose connections did not
// survive its restart, while the other instances' connections stay.
func (d *DB) ResetNodeConnections(ctx context.Context, node string) error {
	if _, err := d.write.ExecContext(ctx, `UPDATE devices SET connected = 0, connected_node = NULL,
		disconnected_at = last_activity_at WHERE connected = 1 AND connected_node = ?`, node); err != nil {
		return fmt.Errorf("reset the connections of node %q: %w", node, err)
	}
	return nil
}

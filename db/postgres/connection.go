package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"fieldhub/storage"
)

// SetDeviceConnection records node's connection of a device opening or
// closing and returns the node that held it before (db.DB's rules): the
// row is locked, so that two instances recording the same device at once
// see each other's write.
func (s *Store) SetDeviceConnection(ctx context.Context, deviceID, node string, connected bool) (string, error) {
	var previous string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var held *string
		err := tx.QueryRow(ctx, `SELECT CASE WHEN connected = 1 THEN connected_node END FROM devices
			WHERE device_id = $1 FOR UPDATE`, deviceID).Scan(&held)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if held != nil {
			previous = *held
		}
		now := ms(s.Now())
		switch {
		case connected:
			_, err = tx.Exec(ctx, `UPDATE devices SET connected = 1, connected_node = $1, last_activity_at = $2
				WHERE device_id = $3`, node, now, deviceID)
		case previous == node || previous == "":
			_, err = tx.Exec(ctx, `UPDATE devices SET connected = 0, connected_node = NULL, last_activity_at = $1,
				disconnected_at = $1 WHERE device_id = $2`, now, deviceID)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("set device %q connected=%v on %q: %w", deviceID, connected, node, err)
	}
	return previous, nil
}

// DeviceConnectionNode is the node holding the device's live connection,
// "" when it has none; an unknown device is storage.ErrNotFound.
func (s *Store) DeviceConnectionNode(ctx context.Context, deviceID string) (string, error) {
	var node *string
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN connected = 1 THEN connected_node END FROM devices WHERE device_id = $1`,
		deviceID).Scan(&node)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("connection node of device %q: %w", deviceID, err)
	}
	if node == nil {
		return "", nil
	}
	return *node, nil
}

// ResetNodeConnections marks disconnected the devices whose connection
// node held, at that instance's start.
func (s *Store) ResetNodeConnections(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE devices SET connected = 0, connected_node = NULL,
		disconnected_at = last_activity_at WHERE connected = 1 AND connected_node = $1`, node); err != nil {
		return fmt.Errorf("reset the connections of node %q: %w", node, err)
	}
	return nil
}

package sqlite

import (
	"context"
	"fmt"
)

// The message log has no index on device_id (migration 0017): with a
// device in every group commit such an index dirtied one page per device
// per commit. message_index holds (device_id, id) for every message up to
// message_index_state.through; IndexMessages moves that watermark along the
// log's tail in steps, and a device's listing reads the index up to the
// watermark and scans the log above it by rowid. Both happen in one
// statement, from one snapshot, so a message is listed once whichever side
// of the watermark it is on, and a crash between a commit and a step loses
// nothing: the tail is scanned until the next step covers it.

// indexedThrough is the watermark, as a subquery: every message up to it
// is in message_index.
const indexedThrough = `(SELECT through FROM message_index_state WHERE id = 1)`

// IndexMessages adds up to limit messages of the log's unindexed tail, in id
// order, to message_index and moves the watermark past them, in one
// transaction on the writer connection. It returns how many it added: when
// that is limit, more may be waiting. It implements telemetry.MessageIndexer.
func (s *Storage) IndexMessages(ctx context.Context, limit int) (int, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("index messages: %w", err)
	}
	defer tx.Rollback()
	var through, next, n int64
	if err := tx.QueryRowContext(ctx, `SELECT w.through, COALESCE(MAX(t.id), w.through), COUNT(t.id)
		FROM message_index_state w LEFT JOIN (SELECT id FROM messages WHERE id > `+indexedThrough+` ORDER BY id LIMIT ?) t
		WHERE w.id = 1`, limit).Scan(&through, &next, &n); err != nil {
		return 0, fmt.Errorf("index messages: find the tail: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	// In key order, so that the step fills each device's page once.
	if _, err := tx.ExecContext(ctx, `INSERT INTO message_index (device_id, id)
		SELECT device_id, id FROM messages WHERE id > ? AND id <= ? ORDER BY device_id, id`, through, next); err != nil {
		return 0, fmt.Errorf("index messages %d to %d: %w", through+1, next, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE message_index_state SET through = ? WHERE id = 1`, next); err != nil {
		return 0, fmt.Errorf("index messages: move the watermark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("index messages %d to %d: %w", through+1, next, err)
	}
	return int(n), nil
}

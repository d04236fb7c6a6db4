package sqlite

import (
	"context"
	"fmt"
)

// The message log has no index on device_id (migration 0017): with a
// device in every group commit such an index dirtied one page per device
// per commit. message_index holds (bucket, device_id, id) for every message
// up to message_index_state.through; IndexMessages moves that watermark
// along the log's tail in steps, and a device's listing reads the index up
// to the watermark and scans the log above it by rowid. Both happen in one
// read transaction, from one snapshot, so a message is listed once whichever
// side of the watermark it is on, and a crash between a commit and a step
// loses nothing: the tail is scanned until the next step covers it.
//
// The index is keyed by bucket (id >> message_index_state.bits) first
// (migration 0019): a step's entries then fall in the newest bucket or two,
// whose pages it rewrites, instead of one page per device across the whole
// index (bench/README.md, issue 10, seventh round). message_index_buckets
// says which buckets hold a device's entries, so a listing seeks only those.

// indexedThrough is the watermark, as a subquery: every message up to it
// is in message_index.
const indexedThrough = `(SELECT through FROM message_index_state WHERE id = 1)`

// bucketBits is the bucket width, as a subquery: an id's bucket is
// id >> bucketBits.
const bucketBits = `(SELECT bits FROM message_index_state WHERE id = 1)`

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
	// In key order, so that the step fills each page once.
	if _, err := tx.ExecContext(ctx, `INSERT INTO message_index (bucket, device_id, id)
		SELECT id >> `+bucketBits+` AS bucket, device_id, id FROM messages WHERE id > ? AND id <= ?
		ORDER BY bucket, device_id, id`, through, next); err != nil {
		return 0, fmt.Errorf("index messages %d to %d: %w", through+1, next, err)
	}
	// Mostly pairs already there: a page changes when a device first
	// appears in a bucket.
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO message_index_buckets (device_id, bucket)
		SELECT DISTINCT device_id, id >> `+bucketBits+` AS bucket FROM messages WHERE id > ? AND id <= ?
		ORDER BY device_id, bucket`, through, next); err != nil {
		return 0, fmt.Errorf("index messages %d to %d: the devices' buckets: %w", through+1, next, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE message_index_state SET through = ? WHERE id = 1`, next); err != nil {
		return 0, fmt.Errorf("index messages: move the watermark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("index messages %d to %d: %w", through+1, next, err)
	}
	return int(n), nil
}

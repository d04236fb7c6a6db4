package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// NewMessage is a device-to-cloud message to store, with the readings the
// ingest pipeline extracted from its body.
type NewMessage struct {
	DeviceID        string // the authenticated device
	MessageID       string
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	To              string
	UserID          string
	Properties      map[string]string
	Body            []byte
	AuthMethod      string
	EnqueuedAt      time.Time
	// ReadingTime is the time of every reading of the message.
	ReadingTime time.Time
	Readings    []Reading
}

// AppendMessages stores msgs in one transaction (the ingest pipeline's group
// commit) and then adds their readings to the in-memory series. It updates
// each sending device's last activity once. ids[i] is the row id of msgs[i],
// or 0 when its device no longer exists (the message is dropped). If the
// transaction fails nothing is stored and nothing is added.
func (d *DB) AppendMessages(ctx context.Context, msgs []NewMessage) (ids []int64, err error) {
	t := &d.tel
	t.write.Lock()
	defer t.write.Unlock()
	if !t.recovered {
		return nil, errors.New("append messages: RecoverTelemetry has not run")
	}
	type deviceRow struct {
		id, created int64
		ok          bool
	}
	ids = make([]int64, len(msgs))
	devices := make(map[string]deviceRow)
	msgDevice := make([]deviceRow, len(msgs))
	fresh := make(map[seriesKey]*series) // series created by this batch
	replaced := make(map[seriesKey]bool) // cached series of a device that was recreated
	freshPerDevice := make(map[int64]int)

	err = d.withTx(ctx, func(tx *sql.Tx) error {
		// The last activity of each device, which also says whether it still exists.
		last := make(map[string]int64)
		for _, m := range msgs {
			last[m.DeviceID] = max(last[m.DeviceID], ms(m.EnqueuedAt))
		}
		touch, err := tx.PrepareContext(ctx, `UPDATE devices SET last_activity_at = MAX(COALESCE(last_activity_at, 0), ?)
			WHERE device_id = ? RETURNING id, created_at`)
		if err != nil {
			return err
		}
		defer touch.Close()
		for dev, at := range last {
			var row deviceRow
			err := touch.QueryRowContext(ctx, at, dev).Scan(&row.id, &row.created)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("update last activity of %q: %w", dev, err)
			}
			row.ok = err == nil
			devices[dev] = row
		}

		metrics := &metricCreator{tx: tx}
		defer metrics.close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO messages (device_id, enqueued_at, message_id, correlation_id,
			content_type, content_encoding, to_address, user_id, properties, auth_method, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for i, m := range msgs {
			dev := devices[m.DeviceID]
			msgDevice[i] = dev
			if !dev.ok {
				continue
			}
			var props any // NULL when there are none
			if len(m.Properties) > 0 {
				b, err := json.Marshal(m.Properties)
				if err != nil {
					return fmt.Errorf("encode properties: %w", err)
				}
				props = string(b)
			}
			body := m.Body
			if body == nil {
				body = []byte{}
			}
			res, err := insert.ExecContext(ctx, dev.id, ms(m.EnqueuedAt), m.MessageID, m.CorrelationID, m.ContentType,
				m.ContentEncoding, m.To, m.UserID, props, m.AuthMethod, body)
			if err != nil {
				return fmt.Errorf("insert message of %q: %w", m.DeviceID, err)
			}
			if ids[i], err = res.LastInsertId(); err != nil {
				return fmt.Errorf("insert message of %q: %w", m.DeviceID, err)
			}
			// Metrics commit with the message that first names them, so that
			// recovery finds every metric it replays.
			for _, r := range m.Readings {
				key := seriesKey{dev.id, r.Metric}
				if _, ok := fresh[key]; ok {
					continue
				}
				if s, ok := t.byKey[key]; ok && s.deviceCreated == dev.created {
					continue
				} else if ok {
					replaced[key] = true
				} else if t.perDevice[dev.id]+freshPerDevice[dev.id] >= MaxMetricsPerDevice {
					continue // dropped below, for want of a series
				}
				freshPerDevice[dev.id]++
				s, err := metrics.newSeries(ctx, key, dev.created)
				if err != nil {
					return fmt.Errorf("device %q: %w", m.DeviceID, err)
				}
				fresh[key] = s
			}
		}
		return nil
	})
	if err != nil {
		for i := range ids {
			ids[i] = 0
		}
		return ids, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	now := d.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range replaced {
		t.forget(t.byKey[key])
	}
	for _, s := range fresh {
		t.add(s)
	}
	for i, m := range msgs {
		if ids[i] == 0 {
			continue
		}
		ts := m.ReadingTime.UnixMilli()
		for _, r := range m.Readings {
			s := t.byKey[seriesKey{msgDevice[i].id, r.Metric}]
			if s == nil || !isFinite(r.Value) {
				continue // over MaxMetricsPerDevice
			}
			s.add(ts, r.Value, now)
		}
		t.lastApplied = max(t.lastApplied, ids[i])
	}
	return ids, nil
}

// StoredMessage is a message from the log.
type StoredMessage struct {
	ID              int64
	DeviceID        string
	EnqueuedAt      time.Time
	MessageID       string
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	To              string
	UserID          string
	Properties      map[string]string // nil when none
	AuthMethod      string
	Body            []byte
}

// MessageFilter pages through a device's message log, newest first.
type MessageFilter struct {
	Limit  int   // 1..MaxMessagePage; 0 means 50
	Before int64 // only messages with a smaller id; 0 means from the newest
}

// MaxMessagePage bounds MessageFilter.Limit.
const MaxMessagePage = 1000

// Messages lists a device's messages, newest first.
func (d *DB) Messages(ctx context.Context, deviceID string, f MessageFilter) ([]StoredMessage, error) {
	switch {
	case f.Limit == 0:
		f.Limit = 50
	case f.Limit < 0 || f.Limit > MaxMessagePage:
		return nil, invalid("limit", "must be between 1 and %d, got %d", MaxMessagePage, f.Limit)
	}
	if f.Before < 0 {
		return nil, invalid("before", "must be a message id, got %d", f.Before)
	}
	if f.Before == 0 {
		f.Before = 1<<63 - 1
	}
	devID, err := d.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	rows, err := d.read.QueryContext(ctx, `SELECT id, enqueued_at, message_id, correlation_id, content_type,
		content_encoding, to_address, user_id, properties, auth_method, body
		FROM messages WHERE device_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, devID, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []StoredMessage
	for rows.Next() {
		m := StoredMessage{DeviceID: deviceID}
		var at int64
		var props sql.NullString
		if err := rows.Scan(&m.ID, &at, &m.MessageID, &m.CorrelationID, &m.ContentType, &m.ContentEncoding,
			&m.To, &m.UserID, &props, &m.AuthMethod, &m.Body); err != nil {
			return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
		}
		m.EnqueuedAt = fromMS(at)
		if props.Valid {
			if err := json.Unmarshal([]byte(props.String), &m.Properties); err != nil {
				return nil, fmt.Errorf("message %d: bad properties column: %w", m.ID, err)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	return out, nil
}

// PruneTelemetry deletes up to limit messages enqueued before cutoff (only
// ones already folded into chunks) and up to limit chunks whose newest
// reading is before cutoff. more says whether another call may find more.
// Small steps keep the single writer connection free for ingest in between.
func (d *DB) PruneTelemetry(ctx context.Context, cutoff time.Time, limit int) (deleted int, more bool, err error) {
	if limit <= 0 {
		return 0, false, invalid("limit", "must be positive")
	}
	t := &d.tel
	t.write.Lock()
	defer t.write.Unlock()
	t.mu.RLock()
	folded := t.folded
	t.mu.RUnlock()
	before := ms(cutoff)
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		// Ids follow enqueue order, so the oldest messages are the first ids:
		// look at the first `limit` rows only instead of scanning the table.
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN (
			SELECT id FROM (SELECT id, enqueued_at FROM messages ORDER BY id LIMIT ?)
			WHERE enqueued_at < ? AND id <= ?)`, limit, before, folded)
		if err != nil {
			return fmt.Errorf("delete old messages: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted += int(n)
		more = more || n == int64(limit)
		res, err = tx.ExecContext(ctx, `DELETE FROM reading_chunks WHERE id IN (
			SELECT id FROM reading_chunks WHERE end_ts < ? LIMIT ?)`, before, limit)
		if err != nil {
			return fmt.Errorf("delete old chunks: %w", err)
		}
		n, _ = res.RowsAffected()
		deleted += int(n)
		more = more || n == int64(limit)
		return nil
	})
	if err != nil {
		return deleted, false, fmt.Errorf("prune telemetry: %w", err)
	}
	return deleted, more, nil
}

// Package sqlite is telemetry's Storage on SQLite: the message log, the
// metrics with their chunks and the watermark, in the tables that
// db/migrations/sqlite/0002_telemetry.sql creates in the hub's database file.
//
// It writes through the database's one writer connection, the same one the
// registry writes through: SQLite has one writer, so queuing every writer on
// one connection in Go is cheaper than busy-waiting in SQLite, and a message
// commit and a registry write never contend.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Database is the SQLite database the telemetry tables live in (*db.DB):
// its one writer connection and its pool of read-only connections.
type Database interface {
	Writer() *sql.DB
	Reader() *sql.DB
}

// Storage implements telemetry.Storage.
type Storage struct {
	write, read *sql.DB
	args        insertArgs // the writer's INSERT parameters (writeTx)
}

var (
	_ telemetry.Storage        = (*Storage)(nil)
	_ telemetry.DevicesVersion = (*writeTx)(nil)
)

// New returns the telemetry storage of d.
func New(d Database) *Storage {
	return &Storage{write: d.Writer(), read: d.Reader()}
}

// Begin starts a write transaction on the writer connection, taken from
// the pool for the transaction's life so that its statements can also run
// on the driver's connection (writeTx.exec).
func (s *Storage) Begin(ctx context.Context) (telemetry.Tx, error) {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &writeTx{tx: tx, conn: conn, ownsConn: true, args: s.args.take()}, nil
}

// Recovery reads the watermark and every metric with its newest chunk.
func (s *Storage) Recovery(ctx context.Context) (int64, []telemetry.MetricRow, error) {
	var watermark int64
	if err := s.write.QueryRowContext(ctx, `SELECT folded_message_id FROM telemetry_state WHERE id = 1`).Scan(&watermark); err != nil {
		return 0, nil, fmt.Errorf("read watermark: %w", err)
	}
	rows, err := s.write.QueryContext(ctx, `SELECT m.id, m.device_id, dv.created_at, m.name, m.last_value, m.last_ts, m.through_msg,
		(SELECT COALESCE(MAX(chunk_no), 0) FROM reading_chunks c WHERE c.metric_id = m.id)
		FROM metrics m JOIN devices dv ON dv.id = m.device_id`)
	if err != nil {
		return 0, nil, fmt.Errorf("load metrics: %w", err)
	}
	defer rows.Close()
	var out []telemetry.MetricRow
	for rows.Next() {
		var m telemetry.MetricRow
		var last lastValue
		if err := rows.Scan(&m.ID, &m.Device.ID, &m.Device.Created, &m.Name, &last.value, &last.ts, &m.Through, &m.LastChunk); err != nil {
			return 0, nil, fmt.Errorf("load metrics: %w", err)
		}
		last.set(&m)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("load metrics: %w", err)
	}
	return watermark, out, nil
}

// lastValue is a metric's stored last value, NULL until its first checkpoint.
type lastValue struct {
	value sql.NullFloat64
	ts    sql.NullInt64
}

func (l lastValue) set(m *telemetry.MetricRow) {
	if l.value.Valid && l.ts.Valid {
		m.Last, m.HasLast = telemetry.Point{TS: l.ts.Int64, Value: l.value.Float64}, true
	}
}

// MessagesAfter reads a page of the log for recovery.
func (s *Storage) MessagesAfter(ctx context.Context, after int64, limit int) ([]telemetry.LoggedBody, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT id, device_id, enqueued_at, body
		FROM messages WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []telemetry.LoggedBody
	for rows.Next() {
		var m telemetry.LoggedBody
		var at int64
		if err := rows.Scan(&m.ID, &m.Device, &at, &m.Body); err != nil {
			return nil, err
		}
		m.EnqueuedAt = storage.FromUnixMS(at)
		page = append(page, m)
	}
	return page, rows.Err()
}

// deviceRowID finds the internal id of a device.
func (s *Storage) deviceRowID(ctx context.Context, deviceID string) (int64, error) {
	var id int64
	err := s.read.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, deviceID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return id, nil
}

// Metrics lists a device's metrics by name.
func (s *Storage) Metrics(ctx context.Context, deviceID string) ([]telemetry.Metric, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, name, last_value, last_ts FROM metrics WHERE device_id = ? ORDER BY name`, devID)
	if err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []telemetry.Metric
	for rows.Next() {
		var m telemetry.Metric
		var last lastValue
		if err := rows.Scan(&m.ID, &m.Name, &last.value, &last.ts); err != nil {
			return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
		}
		if last.value.Valid && last.ts.Valid {
			m.LastValue, m.LastTime = last.value.Float64, time.UnixMilli(last.ts.Int64).UTC()
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	return out, nil
}

// MetricID finds a device's metric.
func (s *Storage) MetricID(ctx context.Context, deviceID, name string) (int64, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.read.QueryRowContext(ctx, `SELECT id FROM metrics WHERE device_id = ? AND name = ?`, devID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("device %q has no metric %q: %w", deviceID, name, err)
	}
	return id, nil
}

// Chunks reads a metric's stored chunks that overlap [from, to].
func (s *Storage) Chunks(ctx context.Context, metricID, from, to int64, withData bool) ([]telemetry.Chunk, error) {
	cols := `chunk_no, start_ts, end_ts, n, min, max, sum, data`
	if !withData {
		cols = `chunk_no, start_ts, end_ts, n, min, max, sum, NULL`
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+cols+` FROM reading_chunks
		WHERE metric_id = ? AND end_ts >= ? AND start_ts <= ?`, metricID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []telemetry.Chunk
	for rows.Next() {
		var c telemetry.Chunk
		if err := rows.Scan(&c.No, &c.Start, &c.End, &c.N, &c.Min, &c.Max, &c.Sum, &c.Data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Rollups reads a metric's rollup rows and its Through in one statement,
// which SQLite answers from one snapshot of the database.
func (s *Storage) Rollups(ctx context.Context, metricID int64, t telemetry.Tier, from, to int64) (int64, []telemetry.Rollup, error) {
	table, err := t.RollupTable()
	if err != nil {
		return 0, nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT m.through_msg, r.bucket, r.n, r.min, r.max, r.sum
		FROM metrics m LEFT JOIN `+table+` r ON r.metric_id = m.id AND r.bucket >= ? AND r.bucket <= ?
		WHERE m.id = ? ORDER BY r.bucket`, from, to, metricID)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var through int64
	var out []telemetry.Rollup
	for rows.Next() {
		var bucket, n sql.NullInt64
		var lo, hi, sum sql.NullFloat64
		if err := rows.Scan(&through, &bucket, &n, &lo, &hi, &sum); err != nil {
			return 0, nil, err
		}
		if bucket.Valid {
			out = append(out, telemetry.Rollup{Bucket: bucket.Int64, N: int(n.Int64), Min: lo.Float64, Max: hi.Float64, Sum: sum.Float64})
		}
	}
	return through, out, rows.Err()
}

// ChunkData reads one stored chunk.
func (s *Storage) ChunkData(ctx context.Context, metricID, chunkNo int64) (n int, data []byte, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT n, data FROM reading_chunks WHERE metric_id = ? AND chunk_no = ?`, metricID, chunkNo).Scan(&n, &data)
	return n, data, err
}

// messageColumns are the columns of a listed message, in scanMessage's order.
const messageColumns = `m.id, m.enqueued_at, m.message_id, m.correlation_id, m.content_type,
	m.content_encoding, m.to_address, m.user_id, m.properties, m.auth_method, m.body`

// listedBuckets bounds the buckets of a device one statement of a listing
// reads.
const listedBuckets = 16

// Messages lists a page of a device's messages, newest first: the newest of
// the unindexed tail (a scan of the log above the watermark), then of
// message_index, bucket by bucket from the newest of those that hold the
// device, all in one read transaction (one snapshot). Every bucket listed
// in message_index_buckets holds an entry of the device, so a page needs at
// most f.Limit+1 buckets however long the log and however rare the device.
// A bucket's seek is a few pages outside a reader's cache, so a statement
// reads the newest bucket alone, the next one, then twice as many each time
// up to listedBuckets: a busy device's page is in one or two buckets, a rare
// one's costs a few statements, and a listing reads at most twice the
// buckets it needs or listedBuckets-1 more, each at most the page's rest.
func (s *Storage) Messages(ctx context.Context, deviceID string, f telemetry.MessageFilter) ([]telemetry.Message, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	defer tx.Rollback()
	var through, bits int64
	if err := tx.QueryRowContext(ctx, `SELECT through, bits FROM message_index_state WHERE id = 1`).Scan(&through, &bits); err != nil {
		return nil, fmt.Errorf("list messages of %q: read the watermark: %w", deviceID, err)
	}
	out, err := appendMessages(ctx, tx, nil, deviceID, `SELECT `+messageColumns+` FROM messages m
		WHERE m.id > ?1 AND m.id < ?2 AND m.device_id = ?3 ORDER BY m.id DESC LIMIT ?4`, through, f.Before, devID, f.Limit)
	if err != nil {
		return nil, err
	}
	before := min(f.Before, through+1) // the indexed ids below the cursor
	for from, n := (before-1)>>bits, 1; len(out) < f.Limit && from >= 0; n = min(2*n, listedBuckets) {
		buckets, err := deviceBuckets(ctx, tx, devID, from, n)
		if err != nil {
			return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
		}
		if len(buckets) == 0 {
			break
		}
		args := []any{devID, before, f.Limit - len(out)}
		for _, b := range buckets {
			args = append(args, b)
		}
		if out, err = appendMessages(ctx, tx, out, deviceID, inBuckets(len(buckets)), args...); err != nil {
			return nil, err
		}
		if len(buckets) < n {
			break
		}
		from = buckets[len(buckets)-1] - 1
	}
	return out, nil
}

// inBuckets is the statement that lists the newest messages of device ?1
// below id ?2, at most ?3, from the n buckets ?4, ?5, …: each bucket's
// newest ?3 by key, then the log's rows by id.
func inBuckets(n int) string {
	var q strings.Builder
	q.WriteString(`SELECT ` + messageColumns + ` FROM messages m WHERE m.id IN (`)
	for i := range n {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&q, `SELECT id FROM (SELECT id FROM message_index WHERE bucket = ?%d AND device_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3)`, i+4)
	}
	q.WriteString(`) ORDER BY m.id DESC LIMIT ?3`)
	return q.String()
}

// deviceBuckets returns the newest n buckets up to from that hold entries
// of the device, newest first.
func deviceBuckets(ctx context.Context, tx *sql.Tx, devID, from int64, n int) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT bucket FROM message_index_buckets
		WHERE device_id = ? AND bucket <= ? ORDER BY bucket DESC LIMIT ?`, devID, from, n)
	if err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("buckets: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// appendMessages appends the messages a query of messageColumns returns.
func appendMessages(ctx context.Context, tx *sql.Tx, out []telemetry.Message, deviceID, query string, args ...any) ([]telemetry.Message, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		m := telemetry.Message{DeviceID: deviceID}
		var at int64
		var props sql.NullString
		if err := rows.Scan(&m.ID, &at, &m.MessageID, &m.CorrelationID, &m.ContentType, &m.ContentEncoding,
			&m.To, &m.UserID, &props, &m.AuthMethod, &m.Body); err != nil {
			return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
		}
		m.EnqueuedAt = storage.FromUnixMS(at)
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

var _ telemetry.LazyCommitter = (*Storage)(nil)

// BeginLazy starts a write transaction whose commit does not wait for the
// disk: the writer connection is taken out of the pool for it, set to
// synchronous=NORMAL (in WAL mode a commit is then written but not synced;
// it stays atomic, and the next commit at FULL syncs it with its own), and
// set back when the transaction ends. A connection that cannot be set back
// is discarded, never returned to the registry's and the messages' writes
// at NORMAL.
func (s *Storage) BeginLazy(ctx context.Context) (telemetry.Tx, error) {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var level int
	if err := conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read synchronous: %w", err)
	}
	l := &lazyTx{conn: conn, restore: level}
	if level > syncNormal {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
			l.end()
			return nil, fmt.Errorf("set synchronous: %w", err)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		l.end()
		return nil, err
	}
	l.writeTx = writeTx{tx: tx, conn: conn, args: s.args.take()}
	return l, nil
}

// syncNormal is PRAGMA synchronous's number for NORMAL.
const syncNormal = 1

// lazyTx is a transaction of BeginLazy.
type lazyTx struct {
	writeTx
	conn    *sql.Conn
	restore int // the connection's synchronous level before
	ended   bool
}

func (l *lazyTx) Commit() error {
	err := l.writeTx.Commit()
	l.end()
	return err
}

func (l *lazyTx) Rollback() error {
	err := l.writeTx.Rollback()
	l.end()
	return err
}

// end sets the connection's synchronous level back and returns it to the
// pool, or discards it when that fails.
func (l *lazyTx) end() {
	if l.ended {
		return
	}
	l.ended = true
	defer l.conn.Close()
	if l.restore <= syncNormal {
		return
	}
	// Not the transaction's context: a cancelled one must not leave the
	// connection at NORMAL.
	if _, err := l.conn.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA synchronous = %d`, l.restore)); err != nil {
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

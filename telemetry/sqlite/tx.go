package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"
)

// writeTx is a telemetry.Tx. Its statements are plain queries: the
// connection's statement cache (db.Open's _stmt_cache_size) keeps them
// prepared from one transaction to the next.
type writeTx struct {
	tx *sql.Tx
	// conn is the writer connection tx runs on: InsertMessages binds its
	// rows on the driver's connection (exec). ownsConn says Commit and
	// Rollback give it back to the pool (a lazyTx gives back its own).
	conn     *sql.Conn
	ownsConn bool
	args     *insertArgs // the Storage's, for the transaction's life
}

func (w *writeTx) Commit() error {
	err := w.tx.Commit()
	w.end()
	return err
}

func (w *writeTx) Rollback() error {
	err := w.tx.Rollback()
	w.end()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// end returns what the transaction held, once.
func (w *writeTx) end() {
	if w.args != nil {
		w.args.release()
		w.args = nil
	}
	if w.ownsConn && w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// insertArgs is the parameters of one INSERT of rows, as the driver takes
// them, kept from one statement and transaction to the next: through
// database/sql every statement converted its []any into a new
// []driver.NamedValue (40 bytes a parameter, 12.8 KB for 64 plain rows),
// which with the []any was a twelfth of the bytes the hub allocated with
// single messages (bench/README.md, issue 10, eighth round).
type insertArgs struct {
	mu     sync.Mutex // held by the one transaction that uses the buffer
	values []driver.NamedValue
}

// take returns the buffer for one transaction, which gives it back with
// release.
func (a *insertArgs) take() *insertArgs {
	a.mu.Lock()
	return a
}

func (a *insertArgs) release() {
	if cap(a.values) > maxKeptArgs {
		a.values = nil
	}
	clear(a.values[:cap(a.values)]) // keeps no message's body or texts
	a.values = a.values[:0]
	a.mu.Unlock()
}

// maxKeptArgs is the most parameters insertArgs keeps: one statement of
// insertChunk rows in the full layout.
const maxKeptArgs = 11 * insertChunk

// driverConn is what the writer needs of SQLite's driver connection
// (mattn/go-sqlite3's *SQLiteConn).
type driverConn interface {
	driver.ExecerContext
	AutoCommit() bool // SQLite's autocommit mode: no transaction is open
}

// errTxGone is a statement refused because the connection is no longer in
// the transaction (database/sql rolls one back on its own when its context
// ends): run outside it, the statement would commit by itself.
var errTxGone = errors.New("the write transaction has ended")

// exec runs a statement of the transaction on the driver's connection,
// its parameters as the driver takes them. Errors are the driver's, as
// database/sql returns them (SQLite's codes stay visible to
// db.FaultKind).
func (w *writeTx) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	var res driver.Result
	err := w.conn.Raw(func(dc any) error {
		c, ok := dc.(driverConn)
		if !ok {
			return fmt.Errorf("the writer's driver connection is a %T", dc)
		}
		if c.AutoCommit() {
			return errTxGone
		}
		var err error
		res, err = c.ExecContext(ctx, query, args)
		return err
	})
	return res, err
}

const findDevice = `SELECT id, created_at FROM devices WHERE device_id = ?`

func (w *writeTx) FindDevice(ctx context.Context, deviceID string) (telemetry.DeviceRow, bool, error) {
	var dev telemetry.DeviceRow
	err := w.tx.QueryRowContext(ctx, findDevice, deviceID).Scan(&dev.ID, &dev.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return dev, false, nil
	}
	return dev, err == nil, err
}

// DevicesVersion reads the counter that db/migrations/sqlite's
// 0012_credentials_version.sql moves by trigger on every device deletion
// (and credential change), in the writer's transaction: it holds SQLite's
// write lock from BEGIN (_txlock=immediate), so no device is deleted between
// this read and the commit.
func (w *writeTx) DevicesVersion(ctx context.Context) (int64, error) {
	var v int64
	err := w.tx.QueryRowContext(ctx, `SELECT version FROM credentials_version WHERE id = 1`).Scan(&v)
	return v, err
}

const devicesCreated = `SELECT id, created_at FROM devices WHERE id IN (SELECT value FROM json_each(?))`

func (w *writeTx) DevicesCreated(ctx context.Context, ids []int64) (map[int64]int64, error) {
	// One statement for any number of devices: the ids as a JSON array.
	list := []byte{'['}
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	list = append(list, ']')
	rows, err := w.tx.QueryContext(ctx, devicesCreated, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	created := make(map[int64]int64, len(ids))
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		created[id] = at
	}
	return created, rows.Err()
}

// insertChunk bounds the rows of one INSERT (11 parameters each at most).
const insertChunk = 64

// A row layout is the columns an INSERT binds for each message. Most
// messages carry none of the optional system properties but their content
// type: the plain layout binds 5 parameters a row and leaves the other
// columns to their defaults (empty text, NULL), the full one binds all 11. Each
// bound parameter is a cgo call and a VDBE register, so plain rows cost the
// commit about half as much to bind (bench/README.md, issue 10, sixth round).
const (
	layoutFull = iota
	layoutPlain
	numLayouts
)

var layoutColumns = [numLayouts]struct{ columns, row string }{
	layoutFull: {`device_id, enqueued_at, message_id, correlation_id, content_type, content_encoding, to_address,
		user_id, properties, auth_method, body`, `(?,?,?,?,?,?,?,?,?,?,?)`},
	layoutPlain: {`device_id, enqueued_at, content_type, auth_method, body`, `(?,?,?,?,?)`},
}

// insertQueries[l][k] is the INSERT of 2^k messages in layout l. A batch is
// written in runs of one layout (nextRun), each in statements of these sizes only, the
// largest that fits first, so that the connection's statement cache holds a
// handful of them instead of one per batch size.
var insertQueries = func() [numLayouts][]string {
	var qs [numLayouts][]string
	for l, lc := range layoutColumns {
		for n := 1; n <= insertChunk; n *= 2 {
			var q strings.Builder
			q.WriteString(`INSERT INTO messages (` + lc.columns + `) VALUES `)
			for i := range n {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString(lc.row)
			}
			qs[l] = append(qs[l], q.String())
		}
	}
	return qs
}()

// layoutOf is the row layout a message needs.
func layoutOf(m *telemetry.Message) int {
	if m.MessageID == "" && m.CorrelationID == "" && m.ContentEncoding == "" && m.To == "" && m.UserID == "" &&
		len(m.Properties) == 0 {
		return layoutPlain
	}
	return layoutFull
}

// minPlainRun is the fewest plain rows written in a statement of their own
// amid full ones: shorter runs go into the full layout with their
// neighbours, so that a batch mixing the two is not cut into statements of
// a row or two.
const minPlainRun = 8

// nextRun is the layout and the number of rows (at most insertChunk) of the
// next statement of rows.
func nextRun(rows []telemetry.MessageRow) (layout, n int) {
	limit := min(len(rows), insertChunk)
	plain := 0
	for plain < limit && layoutOf(rows[plain].Message) == layoutPlain {
		plain++
	}
	if plain == limit || plain >= minPlainRun {
		return layoutPlain, plain
	}
	plain = 0
	for ; n < limit; n++ {
		if layoutOf(rows[n].Message) != layoutPlain {
			plain = 0
		} else if plain++; plain == minPlainRun {
			return layoutFull, n - plain + 1 // up to the run, which gets its own
		}
	}
	return layoutFull, n
}

func (w *writeTx) InsertMessages(ctx context.Context, rows []telemetry.MessageRow) ([]int64, error) {
	if w.args == nil {
		return nil, errTxGone
	}
	ids := make([]int64, len(rows))
	var shared sharedTexts
	for done := 0; done < len(rows); {
		layout, run := nextRun(rows[done:])
		k := bits.Len(uint(run)) - 1
		n := 1 << k
		args := w.args.values[:0]
		var err error
		for _, r := range rows[done : done+n] {
			if args, err = appendMessage(args, &shared, layout, r); err != nil {
				return nil, err
			}
		}
		w.args.values = args
		res, err := w.exec(ctx, insertQueries[layout][k], args)
		if err != nil {
			return nil, err
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		// The rows of one statement get consecutive ids in VALUES order: with
		// AUTOINCREMENT each new id is one more than the largest so far, and
		// this is the only writer.
		for j := range n {
			ids[done+j] = last - int64(n-1-j)
		}
		done += n
	}
	return ids, nil
}

// sharedTexts boxes the texts most messages of a batch share (their auth
// method and content type) once per batch rather than once per message:
// a statement takes its parameters as interfaces, and a string put in one
// is an allocation.
type sharedTexts struct {
	auth, contentType boxedText
}

// boxedText is a text and the interface holding it.
type boxedText struct {
	text string
	box  any
}

// of returns s in an interface, the one held when s is the same text.
func (b *boxedText) of(s string) any {
	if b.box == nil || b.text != s {
		b.text, b.box = s, s
	}
	return b.box
}

// appendMessage appends the INSERT parameters of one message in layout,
// numbered on from those in args.
func appendMessage(args []driver.NamedValue, shared *sharedTexts, layout int, r telemetry.MessageRow) ([]driver.NamedValue, error) {
	m := r.Message
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	contentType, auth := shared.contentType.of(m.ContentType), shared.auth.of(m.AuthMethod)
	if layout == layoutPlain {
		return appendParams(args, r.Device, storage.UnixMS(m.EnqueuedAt), contentType, auth, body), nil
	}
	var props any // NULL when there are none
	if len(m.Properties) > 0 {
		b, err := json.Marshal(m.Properties)
		if err != nil {
			return nil, fmt.Errorf("encode properties: %w", err)
		}
		props = string(b)
	}
	return appendParams(args, r.Device, storage.UnixMS(m.EnqueuedAt), m.MessageID, m.CorrelationID, contentType,
		m.ContentEncoding, m.To, m.UserID, props, auth, body), nil
}

// appendParams appends positional parameters, each a driver.Value (int64,
// string, []byte or nil here).
func appendParams(args []driver.NamedValue, values ...any) []driver.NamedValue {
	for _, v := range values {
		args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
	}
	return args
}

// touchDevices moves the last activity of the devices of a JSON array of
// [id, created_at, at] triples: one statement, one bound parameter, however
// many devices (each row found by its rowid), instead of a statement with
// three per device.
const touchDevices = `UPDATE devices SET last_activity_at = MAX(COALESCE(last_activity_at, 0), a.value ->> 2)
	FROM json_each(?) AS a WHERE devices.id = a.value ->> 0 AND devices.created_at = a.value ->> 1`

func (w *writeTx) TouchDevices(ctx context.Context, at []telemetry.Activity) error {
	if len(at) == 0 {
		return nil
	}
	list := make([]byte, 0, 48*len(at))
	list = append(list, '[')
	for i, a := range at {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, '[')
		list = strconv.AppendInt(list, a.Device.ID, 10)
		list = append(list, ',')
		list = strconv.AppendInt(list, a.Device.Created, 10)
		list = append(list, ',')
		list = strconv.AppendInt(list, a.At, 10)
		list = append(list, ']')
	}
	list = append(list, ']')
	if _, err := w.tx.ExecContext(ctx, touchDevices, string(list)); err != nil {
		return fmt.Errorf("%d devices: %w", len(at), err)
	}
	return nil
}

const createMetric = `INSERT INTO metrics (device_id, name) VALUES (?, ?)
	ON CONFLICT (device_id, name) DO NOTHING RETURNING id`

func (w *writeTx) CreateMetric(ctx context.Context, dev telemetry.DeviceRow, name string) (telemetry.MetricRow, error) {
	m := telemetry.MetricRow{Device: dev, Name: name}
	err := w.tx.QueryRowContext(ctx, createMetric, dev.ID, name).Scan(&m.ID)
	if !errors.Is(err, sql.ErrNoRows) {
		return m, err // new (no chunks, no last value), or failed
	}
	var last lastValue
	err = w.tx.QueryRowContext(ctx, `SELECT id, last_value, last_ts, through_msg,
		(SELECT COALESCE(MAX(chunk_no), 0) FROM reading_chunks WHERE metric_id = metrics.id)
		FROM metrics WHERE device_id = ? AND name = ?`, dev.ID, name).Scan(&m.ID, &last.value, &last.ts, &m.Through, &m.LastChunk)
	if err != nil {
		return m, fmt.Errorf("find metric: %w", err)
	}
	last.set(&m)
	return m, nil
}

const putChunk = `INSERT INTO reading_chunks (metric_id, chunk_no, start_ts, end_ts, n, min, max, sum, data)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM metrics WHERE id = ?1)
	ON CONFLICT (metric_id, chunk_no) DO UPDATE SET start_ts = excluded.start_ts, end_ts = excluded.end_ts,
		n = excluded.n, min = excluded.min, max = excluded.max, sum = excluded.sum, data = excluded.data`

func (w *writeTx) PutChunk(ctx context.Context, metricID int64, c telemetry.Chunk) (bool, error) {
	res, err := w.tx.ExecContext(ctx, putChunk, metricID, c.No, c.Start, c.End, c.N, c.Min, c.Max, c.Sum, c.Data)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// addRollup adds one bucket to a metric's rollups of a tier (%s: its table).
const addRollup = `INSERT INTO %[1]s (metric_id, bucket, n, min, max, sum)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM metrics WHERE id = ?1)
	ON CONFLICT (metric_id, bucket) DO UPDATE SET n = %[1]s.n + excluded.n, min = min(%[1]s.min, excluded.min),
		max = max(%[1]s.max, excluded.max), sum = %[1]s.sum + excluded.sum`

var addRollupQueries = map[telemetry.Tier]string{
	telemetry.TierMinute: fmt.Sprintf(addRollup, "rollup_minutes"),
	telemetry.TierHour:   fmt.Sprintf(addRollup, "rollup_hours"),
}

// AddRollups adds a metric's buckets one statement each: a checkpoint adds
// a bucket or two per metric and tier, and the statement stays prepared.
func (w *writeTx) AddRollups(ctx context.Context, metricID int64, t telemetry.Tier, rows []telemetry.Rollup) (bool, error) {
	q, ok := addRollupQueries[t]
	if !ok {
		return false, fmt.Errorf("no rollup table for tier %s", t)
	}
	for _, r := range rows {
		res, err := w.tx.ExecContext(ctx, q, metricID, r.Bucket, r.N, r.Min, r.Max, r.Sum)
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return false, err
		}
	}
	return true, nil
}

// DeleteRollups looks for old rows metric by metric, along the primary
// key, rather than scanning the table.
func (w *writeTx) DeleteRollups(ctx context.Context, t telemetry.Tier, cutoff int64, limit int) (int, error) {
	table, err := t.RollupTable()
	if err != nil {
		return 0, err
	}
	res, err := w.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE (metric_id, bucket) IN (
		SELECT r.metric_id, r.bucket FROM metrics m JOIN `+table+` r ON r.metric_id = m.id AND r.bucket < ? LIMIT ?)`, cutoff, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

const updateMetric = `UPDATE metrics SET last_value = COALESCE(?1, last_value),
	last_ts = COALESCE(?2, last_ts), through_msg = ?3 WHERE id = ?4`

func (w *writeTx) UpdateMetric(ctx context.Context, metricID, through int64, last *telemetry.Point) (bool, error) {
	var value, ts any // NULL keeps the stored ones
	if last != nil {
		value, ts = last.Value, last.TS
	}
	res, err := w.tx.ExecContext(ctx, updateMetric, value, ts, through, metricID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (w *writeTx) SetWatermark(ctx context.Context, id int64) error {
	_, err := w.tx.ExecContext(ctx, `UPDATE telemetry_state SET folded_message_id = ? WHERE id = 1`, id)
	return err
}

func (w *writeTx) DeleteMessages(ctx context.Context, cutoff time.Time, through int64, limit int) (int, error) {
	// Ids follow enqueue order, so the oldest messages are the first ids:
	// look at the first `limit` rows only instead of scanning the table.
	// Their message_index entries go first, found by key from the rows, then
	// the devices' buckets that this left empty, so that a listing never
	// seeks a bucket without the device's entries.
	const doomed = `SELECT id >> ` + bucketBits + ` AS bucket, device_id, id FROM (
		SELECT id, device_id, enqueued_at FROM messages ORDER BY id LIMIT ?) WHERE enqueued_at < ? AND id <= ?`
	args := []any{limit, storage.UnixMS(cutoff), through}
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM message_index WHERE (bucket, device_id, id) IN (`+doomed+`)`, args...); err != nil {
		return 0, fmt.Errorf("delete from the message index: %w", err)
	}
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM message_index_buckets AS b
		WHERE (device_id, bucket) IN (SELECT device_id, bucket FROM (`+doomed+`))
		AND NOT EXISTS (SELECT 1 FROM message_index x WHERE x.bucket = b.bucket AND x.device_id = b.device_id)`, args...); err != nil {
		return 0, fmt.Errorf("delete from the message index's buckets: %w", err)
	}
	res, err := w.tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN (
		SELECT id FROM (SELECT id, enqueued_at FROM messages ORDER BY id LIMIT ?)
		WHERE enqueued_at < ? AND id <= ?)`, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (w *writeTx) DeleteChunks(ctx context.Context, cutoff int64, limit int) (int, error) {
	res, err := w.tx.ExecContext(ctx, `DELETE FROM reading_chunks WHERE id IN (
		SELECT id FROM reading_chunks WHERE end_ts < ? LIMIT ?)`, cutoff, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

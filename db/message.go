package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// ActivityStep bounds how far a device's stored last activity lags behind its
// newest message. Writing it for every message would rewrite the device row
// (and its last-activity index) once per message, once the largest cost of a
// commit; instead it is written with the device's first message, then when a
// message moved it on by ActivityStep. What is left is written once the device
// has been quiet for a few steps (checked once a step) or at the next
// checkpoint, so the stored value is at most about 3 steps behind.
const ActivityStep = time.Second

// deviceRef is what the writer remembers of a sending device between batches.
type deviceRef struct {
	deviceID    string
	id, created int64
	activity    int64 // newest last activity (Unix ms) of its committed messages
	stored      int64 // last_activity_at as this writer last wrote it
	// shape is the series of the readings of its last message, in order:
	// devices send the same keys message after message, so comparing names
	// spares a map lookup per reading.
	shape []*series
	// overMetricCap is set once new metric names of the device were dropped
	// at MaxMetricsPerDevice and logged, so that it is logged only once.
	overMetricCap bool
}

// sameShape reports whether rs names the metrics of dev's shape, in order,
// all still indexed.
func (dev *deviceRef) sameShape(rs []Reading) bool {
	if len(rs) != len(dev.shape) || len(rs) == 0 {
		return false
	}
	for i, s := range dev.shape {
		if s.forgotten || s.key.name != rs[i].Metric {
			return false
		}
	}
	return true
}

// activityWrite is a last-activity update of one device.
type activityWrite struct {
	dev *deviceRef
	at  int64
}

// forgetDevice drops a cached device row that no longer matches the table.
func (t *telemetry) forgetDevice(dev *deviceRef) {
	if t.devices[dev.deviceID] == dev {
		delete(t.devices, dev.deviceID)
	}
	delete(t.activityPending, dev)
}

// activityWritten records committed last-activity updates.
func (t *telemetry) activityWritten(ws []activityWrite) {
	for _, a := range ws {
		a.dev.activity = max(a.dev.activity, a.at)
		a.dev.stored = max(a.dev.stored, a.at)
		if a.dev.stored >= a.dev.activity {
			delete(t.activityPending, a.dev)
		}
	}
}

// batchWriter holds the statements of one writer transaction, each prepared
// on first use.
type batchWriter struct {
	ctx                             context.Context
	tx                              *sql.Tx
	findDevice, checkDevices, touch *sql.Stmt
	inserts                         map[int]*sql.Stmt // by rows
	metricRows                      *metricCreator
}

func (w *batchWriter) close() {
	for _, st := range []*sql.Stmt{w.findDevice, w.checkDevices, w.touch} {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range w.inserts {
		st.Close()
	}
	if w.metricRows != nil {
		w.metricRows.close()
	}
}

func (w *batchWriter) prepare(st **sql.Stmt, query string) (*sql.Stmt, error) {
	if *st == nil {
		var err error
		if *st, err = w.tx.PrepareContext(w.ctx, query); err != nil {
			return nil, err
		}
	}
	return *st, nil
}

func (w *batchWriter) metrics() *metricCreator {
	if w.metricRows == nil {
		w.metricRows = &metricCreator{tx: w.tx}
	}
	return w.metricRows
}

// lookupDevice reads a device's row; nil when there is none.
func (w *batchWriter) lookupDevice(deviceID string) (*deviceRef, error) {
	st, err := w.prepare(&w.findDevice, `SELECT id, created_at FROM devices WHERE device_id = ?`)
	if err != nil {
		return nil, fmt.Errorf("find device %q: %w", deviceID, err)
	}
	dev := &deviceRef{deviceID: deviceID}
	err = st.QueryRowContext(w.ctx, deviceID).Scan(&dev.id, &dev.created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find device %q: %w", deviceID, err)
	}
	return dev, nil
}

// insertChunk bounds the rows of one INSERT (11 parameters each).
const insertChunk = 64

// insertMessages inserts every message whose device is in devices (non-nil),
// in order, several rows per statement, and sets their ids.
func (w *batchWriter) insertMessages(msgs []NewMessage, devices map[string]*deviceRef, ids []int64) error {
	var rows []int // indexes into msgs
	for i := range msgs {
		if devices[msgs[i].DeviceID] != nil {
			rows = append(rows, i)
		}
	}
	args := make([]any, 0, 11*min(len(rows), insertChunk))
	for len(rows) > 0 {
		n := min(len(rows), insertChunk)
		chunk := rows[:n]
		rows = rows[n:]
		st, err := w.insertStmt(n)
		if err != nil {
			return err
		}
		args = args[:0]
		for _, i := range chunk {
			m := &msgs[i]
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
			args = append(args, devices[m.DeviceID].id, ms(m.EnqueuedAt), m.MessageID, m.CorrelationID, m.ContentType,
				m.ContentEncoding, m.To, m.UserID, props, m.AuthMethod, body)
		}
		res, err := st.ExecContext(w.ctx, args...)
		if err != nil {
			return fmt.Errorf("insert %d messages: %w", n, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert %d messages: %w", n, err)
		}
		// The rows of one statement get consecutive ids in VALUES order: with
		// AUTOINCREMENT each new id is one more than the largest so far, and
		// this is the only writer.
		for j, i := range chunk {
			ids[i] = last - int64(n-1-j)
		}
	}
	return nil
}

// insertStmt prepares (once per transaction and size) an INSERT of n messages.
func (w *batchWriter) insertStmt(n int) (*sql.Stmt, error) {
	if st := w.inserts[n]; st != nil {
		return st, nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO messages (device_id, enqueued_at, message_id, correlation_id, content_type,
		content_encoding, to_address, user_id, properties, auth_method, body) VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?,?,?,?,?,?,?,?)`)
	}
	st, err := w.tx.PrepareContext(w.ctx, q.String())
	if err != nil {
		return nil, fmt.Errorf("insert messages: %w", err)
	}
	if w.inserts == nil {
		w.inserts = map[int]*sql.Stmt{}
	}
	w.inserts[n] = st
	return st, nil
}

// staleDevices returns the cached device rows that no longer match the
// table: the device was deleted, or deleted and created again.
func (w *batchWriter) staleDevices(devs []*deviceRef) ([]*deviceRef, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	list := []byte{'['}
	for i, dev := range devs {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, dev.id, 10)
	}
	list = append(list, ']')
	st, err := w.prepare(&w.checkDevices, `SELECT id, created_at FROM devices WHERE id IN (SELECT value FROM json_each(?))`)
	if err != nil {
		return nil, fmt.Errorf("check devices: %w", err)
	}
	rows, err := st.QueryContext(w.ctx, string(list))
	if err != nil {
		return nil, fmt.Errorf("check devices: %w", err)
	}
	defer rows.Close()
	created := make(map[int64]int64, len(devs))
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("check devices: %w", err)
		}
		created[id] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check devices: %w", err)
	}
	var stale []*deviceRef
	for _, dev := range devs {
		if at, ok := created[dev.id]; !ok || at != dev.created {
			stale = append(stale, dev)
		}
	}
	return stale, nil
}

// writeActivity moves devices' last activity forward.
func (w *batchWriter) writeActivity(ws []activityWrite) error {
	if len(ws) == 0 {
		return nil
	}
	st, err := w.prepare(&w.touch, `UPDATE devices SET last_activity_at = MAX(COALESCE(last_activity_at, 0), ?)
		WHERE id = ? AND created_at = ?`)
	if err != nil {
		return fmt.Errorf("update last activity: %w", err)
	}
	for _, a := range ws {
		if _, err := st.ExecContext(w.ctx, a.at, a.dev.id, a.dev.created); err != nil {
			return fmt.Errorf("update last activity of %q: %w", a.dev.deviceID, err)
		}
	}
	return nil
}

// AppendMessages stores msgs in one transaction (the ingest pipeline's group
// commit) and then adds their readings to the in-memory series. It updates
// each sending device's last activity (see ActivityStep). ids[i] is the row
// id of msgs[i], or 0 when its device no longer exists (the message is
// dropped). If the transaction fails nothing is stored and nothing is added.
func (d *DB) AppendMessages(ctx context.Context, msgs []NewMessage) (ids []int64, err error) {
	t := &d.tel
	t.write.Lock()
	defer t.write.Unlock()
	if !t.recovered {
		return nil, errors.New("append messages: RecoverTelemetry has not run")
	}
	ids = make([]int64, len(msgs))
	msgDevice := make([]*deviceRef, len(msgs)) // nil: the device is gone
	nReadings := 0
	for _, m := range msgs {
		nReadings += len(m.Readings)
	}
	// The series of each reading, found while checking for new metrics, so
	// that adding the readings after commit needs no second lookup.
	readingSeries := make([]*series, 0, nReadings)
	fresh := make(map[seriesKey]*series) // series created by this batch
	replaced := make(map[seriesKey]bool) // cached series of a device that was recreated
	freshPerDevice := make(map[int64]int)
	now := d.Now()
	var evicted []*deviceRef // cached rows that turned out stale
	var capped []*deviceRef  // devices with new metric names dropped in this batch
	var reshaped []int       // messages whose readings did not match their device's shape
	// Last-activity updates written in the transaction, and ones left for later.
	var activity, pending []activityWrite

	err = d.withTx(ctx, func(tx *sql.Tx) error {
		w := batchWriter{ctx: ctx, tx: tx}
		defer w.close()
		var err error
		// This batch's view of the devices: cached rows, checked in one query
		// (a device deleted, or recreated under a new row, is looked up again),
		// and rows looked up now.
		batchDevices := make(map[string]*deviceRef)
		var cached []*deviceRef
		for i := range msgs {
			deviceID := msgs[i].DeviceID
			if _, seen := batchDevices[deviceID]; seen {
				continue
			}
			dev := t.devices[deviceID]
			if dev != nil {
				cached = append(cached, dev)
			} else if dev, err = w.lookupDevice(deviceID); err != nil {
				return err
			}
			batchDevices[deviceID] = dev
		}
		var stale []*deviceRef
		stale, err = w.staleDevices(cached)
		if err != nil {
			return err
		}
		for _, dev := range stale {
			evicted = append(evicted, dev)
			if batchDevices[dev.deviceID], err = w.lookupDevice(dev.deviceID); err != nil {
				return err
			}
		}
		if err := w.insertMessages(msgs, batchDevices, ids); err != nil {
			return err
		}
		for i := range msgs {
			m := &msgs[i]
			dev := batchDevices[m.DeviceID]
			if ids[i] == 0 {
				continue
			}
			msgDevice[i] = dev
			if dev.sameShape(m.Readings) {
				readingSeries = append(readingSeries, dev.shape...)
				continue
			}
			reshaped = append(reshaped, i)
			// Metrics commit with the message that first names them, so that
			// recovery finds every metric it replays.
			for _, r := range m.Readings {
				key := seriesKey{dev.id, r.Metric}
				known, ok := t.byKey[key]
				if ok && known.deviceCreated == dev.created {
					readingSeries = append(readingSeries, known)
					continue
				}
				if s, ok := fresh[key]; ok {
					readingSeries = append(readingSeries, s)
					continue
				}
				if ok {
					replaced[key] = true
				} else if t.perDevice[dev.id]+freshPerDevice[dev.id] >= MaxMetricsPerDevice {
					readingSeries = append(readingSeries, nil) // dropped, for want of a series
					if !dev.overMetricCap && !slices.Contains(capped, dev) {
						capped = append(capped, dev)
					}
					continue
				}
				freshPerDevice[dev.id]++
				s, err := w.metrics().newSeries(ctx, key, dev.created)
				if err != nil {
					return fmt.Errorf("device %q: %w", m.DeviceID, err)
				}
				fresh[key] = s
				readingSeries = append(readingSeries, s)
			}
		}
		// Last activity: at once for a device this writer has not written
		// yet or that moved on by ActivityStep, otherwise later (a sweep
		// once a second, or the checkpoint).
		latest := make(map[*deviceRef]int64, len(batchDevices))
		for i, m := range msgs {
			if dev := msgDevice[i]; dev != nil {
				latest[dev] = max(latest[dev], dev.activity, ms(m.EnqueuedAt))
			}
		}
		sweep := now.Sub(t.activitySwept) >= ActivityStep
		for dev, at := range latest {
			switch {
			case at <= dev.stored:
			case dev.stored == 0 || at-dev.stored >= ActivityStep.Milliseconds() || sweep:
				activity = append(activity, activityWrite{dev, at})
			default:
				pending = append(pending, activityWrite{dev, at})
			}
		}
		if sweep {
			// Devices that went quiet: an active one is written above as
			// its messages move on, spread over time rather than all at once.
			quiet := now.UnixMilli() - 2*ActivityStep.Milliseconds()
			for dev := range t.activityPending {
				if _, ok := latest[dev]; !ok && dev.stored <= quiet {
					activity = append(activity, activityWrite{dev, dev.activity})
				}
			}
		}
		return w.writeActivity(activity)
	})
	if err != nil {
		for i := range ids {
			ids[i] = 0
		}
		return ids, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	// Only now that the transaction committed does memory follow it.
	for _, dev := range evicted {
		t.forgetDevice(dev)
	}
	for _, dev := range capped {
		dev.overMetricCap = true
		d.log.Warn(fmt.Sprintf("device reached the limit of %d metrics; readings of new metric names are not recorded (its messages still are)", MaxMetricsPerDevice),
			"device", dev.deviceID)
	}
	for i, dev := range msgDevice {
		if dev != nil && t.devices[msgs[i].DeviceID] != dev {
			t.devices[msgs[i].DeviceID] = dev
		}
	}
	for _, a := range pending {
		a.dev.activity = max(a.dev.activity, a.at)
		t.activityPending[a.dev] = struct{}{}
	}
	t.activityWritten(activity)
	if now.Sub(t.activitySwept) >= ActivityStep {
		t.activitySwept = now
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range replaced {
		t.forget(t.byKey[key])
	}
	for _, s := range fresh {
		t.add(s)
	}
	k, next := 0, 0
	for i, m := range msgs {
		if ids[i] == 0 {
			continue
		}
		if next < len(reshaped) && reshaped[next] == i {
			next++
			shape := readingSeries[k : k+len(m.Readings)]
			if !slices.Contains(shape, nil) {
				msgDevice[i].shape = slices.Clone(shape)
			}
		}
		ts := m.ReadingTime.UnixMilli()
		for _, r := range m.Readings {
			s := readingSeries[k]
			k++
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

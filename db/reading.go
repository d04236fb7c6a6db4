package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Reading is one numeric value of a message; the message gives it its time.
type Reading struct {
	Metric string
	Value  float64
}

// Time series live in two places. Stored chunks (reading_chunks) hold every
// reading of the messages up to the watermark (telemetry_state), and of each
// metric's messages up to its own through_msg. The readings of later messages
// are in memory: the open chunk of each metric and chunks sealed since the
// last checkpoint. A checkpoint cycle snapshots what is dirty, writes it a few
// metrics per transaction (each with its through_msg, so that no transaction
// holds the writer long, however many metrics there are) and moves the
// watermark with the last one; after a crash RecoverTelemetry rebuilds memory
// from the message log. Queries merge both, so a reading is visible as soon
// as its message committed.
//
// Writes (AppendMessages, CheckpointStep, CheckpointTelemetry, PruneTelemetry)
// come from one goroutine, the ingest pipeline's writer; queries come from
// anywhere.

// MaxMetricsPerDevice bounds the metrics one device can create, so that a
// device sending ever new key names cannot exhaust memory; readings of further
// new names are dropped (their messages are still logged).
const MaxMetricsPerDevice = 1000

// IdleSeal is how long a metric may go without readings before its open chunk
// is sealed at the next checkpoint, releasing its memory.
const IdleSeal = 10 * time.Minute

type telemetry struct {
	// write serialises the writer-side methods: they assume one caller at a time.
	write sync.Mutex
	// mu guards the maps and series contents against concurrent queries.
	mu          sync.RWMutex
	recovered   bool
	byKey       map[seriesKey]*series
	byID        map[int64]*series
	perDevice   map[int64]int    // metrics per devices.id
	lastApplied int64            // newest message id whose readings are in memory
	folded      int64            // watermark as last stored
	cycle       *checkpointCycle // the checkpoint in progress; nil between cycles. Writer-side only.

	// The writer's cache of sending devices (by device id) and those whose
	// last activity is not written yet (see ActivityStep). Writer-side only.
	devices         map[string]*deviceRef
	activityPending map[*deviceRef]struct{}
	activitySwept   time.Time
}

type seriesKey struct {
	device int64 // devices.id
	name   string
}

// series is one metric's in-memory state.
type series struct {
	metricID      int64
	key           seriesKey
	deviceCreated int64 // devices.created_at; a device recreated under a reused id differs
	nextChunk     int64 // chunk_no of the open chunk
	open          chunkEncoder
	openDirty     bool // the open chunk has points not yet stored
	sealed        []storedChunk
	lastValue     float64
	lastTS        int64
	hasLast       bool
	lastDirty     bool
	touched       time.Time // wall time of the last reading, for IdleSeal
	forgotten     bool      // no longer indexed; set by the writer only
	adds          int64     // readings added so far: tells a checkpoint whether its snapshot is still current
	through       int64     // during recovery: stored chunks hold its readings of messages up to this id
}

// storedChunk is a chunk as stored (or as it will be stored).
type storedChunk struct {
	no             int64
	startTS, endTS int64
	n              int
	min, max, sum  float64
	data           []byte
}

func (c *chunkEncoder) snapshot(no int64) storedChunk {
	// The encoder only ever appends, so sharing the prefix with readers is safe.
	return storedChunk{no: no, startTS: c.startTS, endTS: c.endTS, n: c.n, min: c.min, max: c.max, sum: c.sum, data: c.data[:len(c.data):len(c.data)]}
}

func (s *series) add(ts int64, v float64, now time.Time) {
	s.adds++
	s.open.add(ts, v)
	s.openDirty = true
	s.touched = now
	if !s.hasLast || ts >= s.lastTS {
		s.lastValue, s.lastTS, s.hasLast, s.lastDirty = v, ts, true, true
	}
	if s.open.full() {
		s.seal()
	}
}

// seal moves the open chunk to the sealed list; the next reading opens a new one.
func (s *series) seal() {
	if s.open.n == 0 {
		return
	}
	s.sealed = append(s.sealed, s.open.snapshot(s.nextChunk))
	s.nextChunk++
	s.open = chunkEncoder{}
	s.openDirty = false
}

// memChunks returns the series' chunks still only in memory (possibly also
// stored, in an older version) that overlap [from, to].
func (s *series) memChunks(from, to int64) []storedChunk {
	var out []storedChunk
	for _, c := range s.sealed {
		if c.endTS >= from && c.startTS <= to {
			out = append(out, c)
		}
	}
	if s.open.n > 0 && s.open.endTS >= from && s.open.startTS <= to {
		out = append(out, s.open.snapshot(s.nextChunk))
	}
	return out
}

func (t *telemetry) init() {
	if t.byKey == nil {
		t.byKey = map[seriesKey]*series{}
		t.byID = map[int64]*series{}
		t.perDevice = map[int64]int{}
		t.devices = map[string]*deviceRef{}
		t.activityPending = map[*deviceRef]struct{}{}
	}
}

// ExtractFunc turns a stored message body into its readings and their time;
// ingest provides it (db does not parse bodies).
type ExtractFunc func(body []byte, enqueuedAt time.Time) (time.Time, []Reading)

// RecoverTelemetry loads the metrics and rebuilds the in-memory chunks from the
// messages committed after the last checkpoint. It must run before the first
// AppendMessages; later calls do nothing. It returns how many messages it
// replayed.
func (d *DB) RecoverTelemetry(ctx context.Context, extract ExtractFunc) (int, error) {
	t := &d.tel
	t.write.Lock()
	defer t.write.Unlock()
	if t.recovered {
		return 0, nil
	}
	t.mu.Lock()
	t.init()
	t.mu.Unlock()

	rows, err := d.write.QueryContext(ctx, `SELECT m.id, m.device_id, dv.created_at, m.name, m.last_value, m.last_ts, m.through_msg,
		(SELECT COALESCE(MAX(chunk_no), 0) FROM reading_chunks c WHERE c.metric_id = m.id)
		FROM metrics m JOIN devices dv ON dv.id = m.device_id`)
	if err != nil {
		return 0, fmt.Errorf("recover telemetry: load metrics: %w", err)
	}
	loaded := map[int64]*series{}
	for rows.Next() {
		s := &series{}
		var lastValue sql.NullFloat64
		var lastTS sql.NullInt64
		var maxChunk int64
		if err := rows.Scan(&s.metricID, &s.key.device, &s.deviceCreated, &s.key.name, &lastValue, &lastTS, &s.through, &maxChunk); err != nil {
			rows.Close()
			return 0, fmt.Errorf("recover telemetry: load metrics: %w", err)
		}
		s.nextChunk = maxChunk + 1
		if lastValue.Valid && lastTS.Valid {
			s.lastValue, s.lastTS, s.hasLast = lastValue.Float64, lastTS.Int64, true
		}
		loaded[s.metricID] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("recover telemetry: load metrics: %w", err)
	}
	var folded int64
	if err := d.write.QueryRowContext(ctx, `SELECT folded_message_id FROM telemetry_state WHERE id = 1`).Scan(&folded); err != nil {
		return 0, fmt.Errorf("recover telemetry: read watermark: %w", err)
	}
	t.mu.Lock()
	for _, s := range loaded {
		t.add(s)
	}
	t.folded, t.lastApplied = folded, folded
	t.mu.Unlock()

	// Replay in pages: a long query would hold the connection for all of it.
	replayed := 0
	now := d.Now()
	for {
		type pending struct {
			id, device, enqueued int64
			body                 []byte
		}
		var page []pending
		rows, err := d.write.QueryContext(ctx, `SELECT id, device_id, enqueued_at, body
			FROM messages WHERE id > ? ORDER BY id LIMIT 5000`, t.lastApplied)
		if err != nil {
			return replayed, fmt.Errorf("recover telemetry: read messages: %w", err)
		}
		for rows.Next() {
			var p pending
			if err := rows.Scan(&p.id, &p.device, &p.enqueued, &p.body); err != nil {
				rows.Close()
				return replayed, fmt.Errorf("recover telemetry: read messages: %w", err)
			}
			page = append(page, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return replayed, fmt.Errorf("recover telemetry: read messages: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			ts, readings := extract(p.body, fromMS(p.enqueued))
			t.mu.Lock()
			for _, r := range readings {
				// Metrics commit with the first message naming them, so a
				// missing one was refused (MaxMetricsPerDevice) at ingest.
				// A metric written by a checkpoint cycle that did not finish
				// already has the readings up to its through_msg.
				if s, ok := t.byKey[seriesKey{p.device, r.Metric}]; ok && p.id > s.through && isFinite(r.Value) {
					s.add(ts.UnixMilli(), r.Value, now)
				}
			}
			t.mu.Unlock()
			t.mu.Lock()
			t.lastApplied = p.id
			t.mu.Unlock()
			replayed++
		}
	}
	t.mu.Lock()
	t.recovered = true
	t.mu.Unlock()
	return replayed, nil
}

// metricCreator creates metric rows within one transaction, preparing its
// statement on first use: most batches create none.
type metricCreator struct {
	tx     *sql.Tx
	insert *sql.Stmt
}

func (m *metricCreator) close() {
	if m.insert != nil {
		m.insert.Close()
	}
}

// newSeries creates the metric row, or finds it when it exists (a device
// recreated under a reused id), and returns a series for it.
func (m *metricCreator) newSeries(ctx context.Context, key seriesKey, created int64) (*series, error) {
	if m.insert == nil {
		var err error
		m.insert, err = m.tx.PrepareContext(ctx, `INSERT INTO metrics (device_id, name) VALUES (?, ?)
			ON CONFLICT (device_id, name) DO NOTHING RETURNING id`)
		if err != nil {
			return nil, fmt.Errorf("create metric %q: %w", key.name, err)
		}
	}
	s := &series{key: key, deviceCreated: created, nextChunk: 1}
	err := m.insert.QueryRowContext(ctx, key.device, key.name).Scan(&s.metricID)
	if err == nil {
		return s, nil // new: no chunks, no last value
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("create metric %q: %w", key.name, err)
	}
	var lastValue sql.NullFloat64
	var lastTS sql.NullInt64
	var maxChunk int64
	err = m.tx.QueryRowContext(ctx, `SELECT id, last_value, last_ts,
		(SELECT COALESCE(MAX(chunk_no), 0) FROM reading_chunks WHERE metric_id = metrics.id)
		FROM metrics WHERE device_id = ? AND name = ?`, key.device, key.name).Scan(&s.metricID, &lastValue, &lastTS, &maxChunk)
	if err != nil {
		return nil, fmt.Errorf("find metric %q: %w", key.name, err)
	}
	if lastValue.Valid && lastTS.Valid {
		s.lastValue, s.lastTS, s.hasLast = lastValue.Float64, lastTS.Int64, true
	}
	s.nextChunk = maxChunk + 1
	return s, nil
}

// CheckpointStats says what a checkpoint (or one step of it) wrote.
type CheckpointStats struct {
	Chunks    int   // chunk rows written (sealed and partial)
	Metrics   int   // metric rows whose last value was updated
	Watermark int64 // every message up to this id is now in stored chunks
}

// checkpointCycle is a checkpoint in progress: the series that were dirty when
// it began, still to be written.
type checkpointCycle struct {
	watermark int64     // newest message in memory when the cycle began
	todo      []*series // in metric id order, so that writes touch neighbouring pages
	activity  []activityWrite
}

// checkpointWork is one series' snapshot; a step writes it in one transaction
// with the metric's through_msg, so that the two agree after any crash.
type checkpointWork struct {
	s         *series
	chunks    []storedChunk
	last      bool
	lastValue float64
	lastTS    int64
	adds      int64 // s.adds at the snapshot
}

// startCycle lists the series with something to write and the pending last
// activities. Snapshots are taken step by step, so that starting a cycle
// costs little however many series there are.
func (t *telemetry) startCycle(now time.Time) *checkpointCycle {
	c := &checkpointCycle{}
	t.mu.RLock()
	for _, s := range t.byID {
		if s.openDirty || len(s.sealed) > 0 || s.lastDirty || (s.open.n > 0 && now.Sub(s.touched) >= IdleSeal) {
			c.todo = append(c.todo, s)
		}
	}
	c.watermark = t.lastApplied
	t.mu.RUnlock()
	slices.SortFunc(c.todo, func(a, b *series) int { return compareInt(a.metricID, b.metricID) })
	for dev := range t.activityPending {
		c.activity = append(c.activity, activityWrite{dev, dev.activity})
	}
	return c
}

// snapshot takes the series' unstored chunks and last value as of now. Its
// open chunk is sealed first when idle for IdleSeal. Caller holds t.mu.
func (s *series) snapshot(now time.Time) checkpointWork {
	if s.open.n > 0 && now.Sub(s.touched) >= IdleSeal {
		s.seal()
	}
	w := checkpointWork{s: s, chunks: slices.Clone(s.sealed), last: s.lastDirty, lastValue: s.lastValue, lastTS: s.lastTS, adds: s.adds}
	if s.openDirty {
		// The encoder only appends: the snapshot shares its prefix.
		w.chunks = append(w.chunks, s.open.snapshot(s.nextChunk))
	}
	return w
}

// CheckpointStep writes part of a checkpoint in one transaction. It begins a
// cycle when none is in progress, covering every series with readings not
// yet stored, then snapshots and writes whole series until about maxRows rows
// are written (maxRows <= 0: all of them), each with the message id its
// stored chunks are now complete through. The step that writes the last one
// moves the watermark to the newest message at the cycle's start and reports
// done. Bounded steps keep the writer free for ingest in between.
func (d *DB) CheckpointStep(ctx context.Context, maxRows int) (done bool, st CheckpointStats, err error) {
	t := &d.tel
	t.write.Lock()
	defer t.write.Unlock()
	if !t.recovered {
		return false, st, errors.New("checkpoint telemetry: RecoverTelemetry has not run")
	}
	now := d.Now()
	if t.cycle == nil {
		t.cycle = t.startCycle(now)
	}
	c := t.cycle
	// Whole series only: a series' chunks and through_msg commit together.
	var work []checkpointWork
	nSeries, rows := 0, 0
	t.mu.Lock()
	through := t.lastApplied // every snapshot below holds the readings up to here
	for nSeries < len(c.todo) && (maxRows <= 0 || rows < maxRows) {
		s := c.todo[nSeries]
		nSeries++
		if s.forgotten {
			continue // its metric row is gone
		}
		w := s.snapshot(now)
		if len(w.chunks) > 0 || w.last {
			work = append(work, w)
			rows += len(w.chunks) + 1
		}
	}
	t.mu.Unlock()
	nAct := len(c.activity)
	if maxRows > 0 {
		nAct = min(nAct, max(maxRows-rows, 0))
	}
	activity := c.activity[:nAct]
	last := nSeries == len(c.todo) && nAct == len(c.activity)
	if len(work) == 0 && len(activity) == 0 && (!last || c.watermark == t.folded) {
		c.todo = c.todo[nSeries:]
		if last {
			t.cycle = nil
		}
		st.Watermark = t.folded
		return last, st, nil
	}

	var gone []*series
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		if len(work) > 0 {
			if err := writeSeries(ctx, tx, through, work, &st, &gone); err != nil {
				return err
			}
		}
		w := batchWriter{ctx: ctx, tx: tx}
		defer w.close()
		if err := w.writeActivity(activity); err != nil {
			return err
		}
		if !last {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE telemetry_state SET folded_message_id = ? WHERE id = 1`, c.watermark)
		return err
	})
	if err != nil {
		// The series stay to do; their snapshots are taken again.
		return false, CheckpointStats{}, fmt.Errorf("checkpoint telemetry: %w", err)
	}
	t.activityWritten(activity)
	c.todo, c.activity = c.todo[nSeries:], c.activity[nAct:]
	t.mu.Lock()
	for _, w := range work {
		written := func(sc storedChunk) bool {
			return slices.ContainsFunc(w.chunks, func(wc storedChunk) bool { return wc.no == sc.no && wc.n == sc.n })
		}
		// A chunk sealed since the snapshot has more points than was written:
		// it stays, for the next cycle.
		w.s.sealed = slices.DeleteFunc(w.s.sealed, written)
		if w.s.adds == w.adds {
			w.s.openDirty, w.s.lastDirty = false, false
		}
	}
	for _, s := range gone {
		t.forget(s)
	}
	if last {
		t.folded = c.watermark
	}
	t.mu.Unlock()
	if last {
		t.cycle = nil
	}
	st.Watermark = t.folded
	return last, st, nil
}

// writeSeries writes the chunks, last values and through_msg of work; series
// whose metric row is gone (deleted with its device) are added to gone.
func writeSeries(ctx context.Context, tx *sql.Tx, through int64, work []checkpointWork, st *CheckpointStats, gone *[]*series) error {
	putChunk, err := tx.PrepareContext(ctx, `INSERT INTO reading_chunks (metric_id, chunk_no, start_ts, end_ts, n, min, max, sum, data)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM metrics WHERE id = ?1)
		ON CONFLICT (metric_id, chunk_no) DO UPDATE SET start_ts = excluded.start_ts, end_ts = excluded.end_ts,
			n = excluded.n, min = excluded.min, max = excluded.max, sum = excluded.sum, data = excluded.data`)
	if err != nil {
		return err
	}
	defer putChunk.Close()
	putMetric, err := tx.PrepareContext(ctx, `UPDATE metrics SET last_value = COALESCE(?1, last_value),
		last_ts = COALESCE(?2, last_ts), through_msg = ?3 WHERE id = ?4`)
	if err != nil {
		return err
	}
	defer putMetric.Close()
	for _, w := range work {
		exists := true
		for _, c := range w.chunks {
			res, err := putChunk.ExecContext(ctx, w.s.metricID, c.no, c.startTS, c.endTS, c.n, c.min, c.max, c.sum, c.data)
			if err != nil {
				return fmt.Errorf("write chunk %d of metric %d: %w", c.no, w.s.metricID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				exists = false // deleted with its device
				break
			}
			st.Chunks++
		}
		if exists {
			var lastValue, lastTS any // NULL keeps the stored ones
			if w.last {
				lastValue, lastTS = w.lastValue, w.lastTS
			}
			res, err := putMetric.ExecContext(ctx, lastValue, lastTS, through, w.s.metricID)
			if err != nil {
				return fmt.Errorf("update metric %d: %w", w.s.metricID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				exists = false
			} else if w.last {
				st.Metrics++
			}
		}
		if !exists {
			*gone = append(*gone, w.s)
		}
	}
	return nil
}

// CheckpointTelemetry writes everything in memory as of now — finishing the
// cycle in progress, if any, first — and moves the watermark to the newest
// message in memory. Open chunks idle for IdleSeal are sealed. Without a cycle
// in progress it is one transaction; at shutdown that is what is wanted.
func (d *DB) CheckpointTelemetry(ctx context.Context) (CheckpointStats, error) {
	var total CheckpointStats
	d.tel.write.Lock()
	pending := d.tel.cycle != nil
	d.tel.write.Unlock()
	for {
		done, st, err := d.CheckpointStep(ctx, 0)
		if err != nil {
			return total, err
		}
		total.Chunks += st.Chunks
		total.Metrics += st.Metrics
		total.Watermark = st.Watermark
		if !done {
			continue
		}
		if !pending {
			return total, nil
		}
		// That cycle covered only the series dirty when it began.
		pending = false
	}
}

// add indexes a series. Caller holds t.mu.
func (t *telemetry) add(s *series) {
	if old, ok := t.byKey[s.key]; ok {
		t.forget(old)
	}
	t.byKey[s.key], t.byID[s.metricID] = s, s
	t.perDevice[s.key.device]++
}

// forget drops a series whose metric row is gone. Caller holds t.mu.
func (t *telemetry) forget(s *series) {
	if s == nil || t.byKey[s.key] != s {
		return
	}
	s.forgotten = true
	delete(t.byKey, s.key)
	delete(t.byID, s.metricID)
	if t.perDevice[s.key.device]--; t.perDevice[s.key.device] <= 0 {
		delete(t.perDevice, s.key.device)
	}
}

// Metric is a device's metric with its newest reading.
type Metric struct {
	ID        int64
	Name      string
	LastValue float64
	LastTime  time.Time // zero when the metric has no reading yet
}

// Metrics lists a device's metrics by name, with the newest reading of each.
func (d *DB) Metrics(ctx context.Context, deviceID string) ([]Metric, error) {
	devID, err := d.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	rows, err := d.read.QueryContext(ctx, `SELECT id, name, last_value, last_ts FROM metrics WHERE device_id = ? ORDER BY name`, devID)
	if err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		var v sql.NullFloat64
		var ts sql.NullInt64
		if err := rows.Scan(&m.ID, &m.Name, &v, &ts); err != nil {
			return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
		}
		if v.Valid && ts.Valid {
			m.LastValue, m.LastTime = v.Float64, time.UnixMilli(ts.Int64).UTC()
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	t := &d.tel
	t.mu.RLock()
	for i, m := range out {
		if s, ok := t.byID[m.ID]; ok && s.hasLast {
			out[i].LastValue, out[i].LastTime = s.lastValue, time.UnixMilli(s.lastTS).UTC()
		}
	}
	t.mu.RUnlock()
	return out, nil
}

// deviceRowID finds the internal id of a device.
func (d *DB) deviceRowID(ctx context.Context, deviceID string) (int64, error) {
	var id int64
	err := d.read.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, deviceID).Scan(&id)
	if err := translate(err); err != nil {
		return 0, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return id, nil
}

// metricID finds a device's metric.
func (d *DB) metricID(ctx context.Context, deviceID, metric string) (int64, error) {
	devID, err := d.deviceRowID(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	var id int64
	err = d.read.QueryRowContext(ctx, `SELECT id FROM metrics WHERE device_id = ? AND name = ?`, devID, metric).Scan(&id)
	if err := translate(err); err != nil {
		return 0, fmt.Errorf("device %q has no metric %q: %w", deviceID, metric, err)
	}
	return id, nil
}

// chunksInRange returns the chunks of a metric that overlap [from, to] (Unix
// ms, inclusive), stored and in memory, each once, ordered by start time.
func (d *DB) chunksInRange(ctx context.Context, metricID, from, to int64, withData bool) ([]storedChunk, error) {
	// Memory first: a checkpoint removes chunks from memory only after they are
	// stored, so whatever leaves memory after this point is in the query below.
	t := &d.tel
	t.mu.RLock()
	var mem []storedChunk
	if s, ok := t.byID[metricID]; ok {
		mem = s.memChunks(from, to)
	}
	t.mu.RUnlock()

	cols := `chunk_no, start_ts, end_ts, n, min, max, sum, data`
	if !withData {
		cols = `chunk_no, start_ts, end_ts, n, min, max, sum, NULL`
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+cols+` FROM reading_chunks
		WHERE metric_id = ? AND end_ts >= ? AND start_ts <= ?`, metricID, from, to)
	if err != nil {
		return nil, fmt.Errorf("read chunks of metric %d: %w", metricID, err)
	}
	defer rows.Close()
	var out []storedChunk
	for rows.Next() {
		var c storedChunk
		if err := rows.Scan(&c.no, &c.startTS, &c.endTS, &c.n, &c.min, &c.max, &c.sum, &c.data); err != nil {
			return nil, fmt.Errorf("read chunks of metric %d: %w", metricID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read chunks of metric %d: %w", metricID, err)
	}
	// A chunk in both places: the version with more points is the newer one.
	for _, m := range mem {
		i := slices.IndexFunc(out, func(c storedChunk) bool { return c.no == m.no })
		switch {
		case i < 0:
			out = append(out, m)
		case m.n > out[i].n:
			out[i] = m
		}
	}
	slices.SortFunc(out, func(a, b storedChunk) int { return compareInt(a.startTS, b.startTS) })
	return out, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Bucket summarises the readings in [Time, Time+Width).
type Bucket struct {
	Time  time.Time
	Min   float64
	Max   float64
	Avg   float64
	Count int
}

// MaxBuckets bounds Readings' points.
const MaxBuckets = 10000

// Readings downsamples a metric over [from, to] into at most points buckets
// of equal width, returning the non-empty ones in time order. Chunks that fall
// inside one bucket are folded from their stored summaries without decoding.
func (d *DB) Readings(ctx context.Context, deviceID, metric string, from, to time.Time, points int) ([]Bucket, error) {
	if points < 1 || points > MaxBuckets {
		return nil, invalid("points", "must be between 1 and %d, got %d", MaxBuckets, points)
	}
	if to.Before(from) {
		return nil, invalid("to", "is before from")
	}
	metricID, err := d.metricID(ctx, deviceID, metric)
	if err != nil {
		return nil, err
	}
	return d.downsample(ctx, metricID, from.UnixMilli(), to.UnixMilli(), points)
}

func (d *DB) downsample(ctx context.Context, metricID, from, to int64, points int) ([]Bucket, error) {
	span := to - from + 1
	width := (span + int64(points) - 1) / int64(points)
	nb := int((span + width - 1) / width)
	type agg struct {
		n             int
		min, max, sum float64
	}
	aggs := make([]agg, nb)
	fold := func(i int, n int, lo, hi, sum float64) {
		a := &aggs[i]
		if a.n == 0 {
			a.min, a.max = lo, hi
		} else {
			a.min, a.max = min(a.min, lo), max(a.max, hi)
		}
		a.n += n
		a.sum += sum
	}
	chunks, err := d.chunksInRange(ctx, metricID, from, to, true)
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if c.startTS >= from && c.endTS <= to && (c.startTS-from)/width == (c.endTS-from)/width {
			fold(int((c.startTS-from)/width), c.n, c.min, c.max, c.sum)
			continue
		}
		err := decodeChunk(c.data, c.n, func(ts int64, v float64) {
			if ts >= from && ts <= to {
				fold(int((ts-from)/width), 1, v, v, v)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("metric %d chunk %d: %w", metricID, c.no, err)
		}
	}
	var out []Bucket
	for i, a := range aggs {
		if a.n == 0 {
			continue
		}
		out = append(out, Bucket{Time: time.UnixMilli(from + int64(i)*width).UTC(), Min: a.min, Max: a.max, Avg: a.sum / float64(a.n), Count: a.n})
	}
	return out, nil
}

// RawReadings calls fn for every reading of a metric in [from, to], chunk by
// chunk so that an export of any length needs little memory. Readings come in
// time order within a chunk and chunks in order of their first reading (device
// timestamps that jump backwards can make chunks overlap). An error from fn
// stops the walk and is returned.
func (d *DB) RawReadings(ctx context.Context, deviceID, metric string, from, to time.Time, fn func(t time.Time, v float64) error) error {
	if to.Before(from) {
		return invalid("to", "is before from")
	}
	metricID, err := d.metricID(ctx, deviceID, metric)
	if err != nil {
		return err
	}
	lo, hi := from.UnixMilli(), to.UnixMilli()
	// Summaries first, then one chunk's data at a time.
	chunks, err := d.chunksInRange(ctx, metricID, lo, hi, false)
	if err != nil {
		return err
	}
	type point struct {
		ts int64
		v  float64
	}
	var pts []point
	for _, c := range chunks {
		data := c.data
		if data == nil {
			data, err = d.chunkData(ctx, metricID, c)
			if err != nil {
				return err
			}
		}
		pts = pts[:0]
		if err := decodeChunk(data, c.n, func(ts int64, v float64) {
			if ts >= lo && ts <= hi {
				pts = append(pts, point{ts, v})
			}
		}); err != nil {
			return fmt.Errorf("metric %d chunk %d: %w", metricID, c.no, err)
		}
		slices.SortStableFunc(pts, func(a, b point) int { return compareInt(a.ts, b.ts) })
		for _, p := range pts {
			if err := fn(time.UnixMilli(p.ts).UTC(), p.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunkData reads one stored chunk's data, falling back to memory when a
// checkpoint rewrote it with more points in between.
func (d *DB) chunkData(ctx context.Context, metricID int64, c storedChunk) ([]byte, error) {
	var data []byte
	var n int
	err := d.read.QueryRowContext(ctx, `SELECT n, data FROM reading_chunks WHERE metric_id = ? AND chunk_no = ?`, metricID, c.no).Scan(&n, &data)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d of metric %d: %w", c.no, metricID, err)
	}
	if n < c.n {
		return nil, fmt.Errorf("read chunk %d of metric %d: has %d points, want %d", c.no, metricID, n, c.n)
	}
	// A longer version starts with the same bytes: decoding c.n points of it
	// yields exactly the points the summary counted.
	return data, nil
}

// isFinite reports whether v can be stored as a reading.
func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

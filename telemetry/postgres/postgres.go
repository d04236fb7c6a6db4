// Package postgres is telemetry's Storage on PostgreSQL: the message log,
// the metrics with their compressed chunks and the watermark, in the tables
// that db/migrations/postgres/0002_telemetry.sql creates, beside the hub's
// store (package db/postgres) in one database, through its pool.
//
// The engine (package telemetry) assumes it is the only writer of its
// message ids, chunk numbers and watermark. Here each is scoped to a node,
// the name of the hub instance the storage is opened for: messages record
// the node that logged them, a node has its own watermark and its own
// progress per metric, and numbers its chunks in a range of its own (see
// the migration). A node's recovery replays its own messages only; queries
// read every node's data. So several hubs share the tables, each as the
// node of its --node (package cluster); a stopped node's log is folded by
// another instance (Fold). Before clusters, one hub used the node "".
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"fieldhub/storage"
	"fieldhub/telemetry"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Storage implements telemetry.Storage for one node.
type Storage struct {
	pool *pgxpool.Pool
	node int32 // telemetry_nodes.id
	// chunkBase is where the node's chunk numbers start: every chunk it
	// writes is numbered above it and below the next node's.
	chunkBase int64
	claimed   *pgxpool.Conn // the connection holding the node's claim (Claim)

	// What the writer knows of existing metrics (see writeMetric): these
	// ids existed when metric_deletions stood at checkedAt.
	mu        sync.Mutex
	known     map[int64]bool
	checkedAt int64
	// ids are the message ids reserved and not used yet (messageIDs).
	ids []int64
}

// forget drops what the storage knows of existing metrics: the next write
// transaction checks them again.
func (s *Storage) forget() {
	s.mu.Lock()
	s.checkedAt = -1
	s.mu.Unlock()
}

var _ telemetry.Storage = (*Storage)(nil)

// nodeRange is how many chunk numbers each node has per metric: at a
// thousand readings a chunk, more than any metric will ever fill.
const nodeRange = 1 << 32

// New returns the telemetry storage of node (registering it on first use)
// in the database of pool.
func New(ctx context.Context, pool *pgxpool.Pool, node string) (*Storage, error) {
	s := &Storage{pool: pool, known: map[int64]bool{}, checkedAt: -1}
	err := pool.QueryRow(ctx, `WITH new AS (
			INSERT INTO telemetry_nodes (node) VALUES ($1) ON CONFLICT (node) DO NOTHING RETURNING id)
		SELECT id FROM new UNION ALL SELECT id FROM telemetry_nodes WHERE node = $1`, node).Scan(&s.node)
	if err != nil {
		return nil, fmt.Errorf("register telemetry node %q: %w", node, err)
	}
	// The row every group commit of the node moves (Commit).
	if _, err := pool.Exec(ctx, `INSERT INTO telemetry_logged (node) VALUES ($1) ON CONFLICT (node) DO NOTHING`, s.node); err != nil {
		return nil, fmt.Errorf("register telemetry node %q: %w", node, err)
	}
	s.chunkBase = int64(s.node-1) * nodeRange
	return s, nil
}

// lastChunk is the SQL of a metric's (m.id) highest chunk number of this
// node ($1 its id, $2 its chunk base), the base when it has none.
const lastChunk = `COALESCE((SELECT MAX(chunk_no) FROM reading_chunks c
	WHERE c.metric_id = m.id AND c.chunk_no > $2 AND c.chunk_no <= $2 + 4294967296), $2)`

// Recovery reads the node's watermark and every metric with the node's
// progress and newest chunk.
func (s *Storage) Recovery(ctx context.Context) (int64, []telemetry.MetricRow, error) {
	var watermark, deletions int64
	if err := s.pool.QueryRow(ctx, `SELECT folded_message_id, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM metric_deletions)
		FROM telemetry_nodes WHERE id = $1`, s.node).Scan(&watermark, &deletions); err != nil {
		return 0, nil, fmt.Errorf("read watermark: %w", err)
	}
	r, err := s.pool.Query(ctx, `SELECT m.id, m.device_id, dv.created_at, m.name, m.last_value, m.last_ts,
		COALESCE(p.through_msg, 0), `+lastChunk+`
		FROM metrics m JOIN devices dv ON dv.id = m.device_id
		LEFT JOIN metric_progress p ON p.metric_id = m.id AND p.node = $1`, s.node, s.chunkBase)
	if err != nil {
		return 0, nil, fmt.Errorf("load metrics: %w", err)
	}
	defer r.Close()
	var out []telemetry.MetricRow
	for r.Next() {
		var m telemetry.MetricRow
		var last lastValue
		if err := r.Scan(&m.ID, &m.Device.ID, &m.Device.Created, &m.Name, &last.value, &last.ts, &m.Through, &m.LastChunk); err != nil {
			return 0, nil, fmt.Errorf("load metrics: %w", err)
		}
		last.set(&m)
		out = append(out, m)
	}
	if err := r.Err(); err != nil {
		return 0, nil, fmt.Errorf("load metrics: %w", err)
	}
	// Every metric listed existed when the deletions stood at deletions.
	known := make(map[int64]bool, len(out))
	for _, m := range out {
		known[m.ID] = true
	}
	s.mu.Lock()
	s.known, s.checkedAt = known, deletions
	s.mu.Unlock()
	return watermark, out, nil
}

// lastValue is a metric's stored last value, NULL until its first checkpoint.
type lastValue struct {
	value *float64
	ts    *int64
}

func (l lastValue) set(m *telemetry.MetricRow) {
	if l.value != nil && l.ts != nil {
		m.Last, m.HasLast = telemetry.Point{TS: *l.ts, Value: *l.value}, true
	}
}

// MessagesAfter reads a page of the node's log for recovery.
func (s *Storage) MessagesAfter(ctx context.Context, after int64, limit int) ([]telemetry.LoggedBody, error) {
	r, err := s.pool.Query(ctx, `SELECT id, device_id, enqueued_at, body
		FROM messages WHERE node = $1 AND id > $2 ORDER BY id LIMIT $3`, s.node, after, limit)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var page []telemetry.LoggedBody
	for r.Next() {
		var m telemetry.LoggedBody
		var at int64
		if err := r.Scan(&m.ID, &m.Device, &at, &m.Body); err != nil {
			return nil, err
		}
		m.EnqueuedAt = storage.FromUnixMS(at)
		page = append(page, m)
	}
	return page, r.Err()
}

// deviceRowID finds the internal id of a device.
func (s *Storage) deviceRowID(ctx context.Context, deviceID string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1`, deviceID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return id, nil
}

// Metrics lists a device's metrics by name (in byte order, as SQLite).
func (s *Storage) Metrics(ctx context.Context, deviceID string) ([]telemetry.Metric, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	r, err := s.pool.Query(ctx, `SELECT id, name, last_value, last_ts FROM metrics WHERE device_id = $1 ORDER BY name COLLATE "C"`, devID)
	if err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	defer r.Close()
	var out []telemetry.Metric
	for r.Next() {
		var m telemetry.Metric
		var last lastValue
		if err := r.Scan(&m.ID, &m.Name, &last.value, &last.ts); err != nil {
			return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
		}
		if last.value != nil && last.ts != nil {
			m.LastValue, m.LastTime = *last.value, time.UnixMilli(*last.ts).UTC()
		}
		out = append(out, m)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	if err := s.newestOfOthers(ctx, devID, out); err != nil {
		return nil, fmt.Errorf("list metrics of %q: %w", deviceID, err)
	}
	return out, nil
}

// newestOfOthers moves the last values of a device's metrics forward by the
// readings that other nodes logged and have not checkpointed yet (see
// tailCTE). A reading already in the stored last value changes nothing, so
// the watermark alone bounds the read.
func (s *Storage) newestOfOthers(ctx context.Context, devID int64, ms []telemetry.Metric) error {
	r, err := s.pool.Query(ctx, `SELECT t.enqueued_at, t.body
		FROM (SELECT n.id AS node, n.folded_message_id AS after, l.message_id AS upto, $1::bigint AS device_id
			FROM telemetry_nodes n JOIN telemetry_logged l ON l.node = n.id
			WHERE n.id <> $2 AND l.message_id > n.folded_message_id OFFSET 0) b
		CROSS JOIN LATERAL (`+tailMessages+`) t`, devID, s.node)
	if err != nil {
		return err
	}
	defer r.Close()
	at := make(map[string]int, len(ms))
	for i, m := range ms {
		at[m.Name] = i
	}
	for r.Next() {
		var enqueued int64
		var body []byte
		if err := r.Scan(&enqueued, &body); err != nil {
			return err
		}
		rec := telemetry.NewRecord(telemetry.Message{EnqueuedAt: storage.FromUnixMS(enqueued), Body: body})
		for _, rd := range rec.Readings {
			i, ok := at[rd.Metric]
			if ok && (ms[i].LastTime.IsZero() || !rec.Time.Before(ms[i].LastTime)) {
				ms[i].LastValue, ms[i].LastTime = rd.Value, rec.Time.UTC()
			}
		}
	}
	return r.Err()
}

// MetricID finds a device's metric.
func (s *Storage) MetricID(ctx context.Context, deviceID, name string) (int64, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.pool.QueryRow(ctx, `SELECT id FROM metrics WHERE device_id = $1 AND name = $2`, devID, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("device %q has no metric %q: %w", deviceID, name, err)
	}
	return id, nil
}

// Chunks reads a metric's stored chunks (every node's) that overlap [from,
// to], and the readings in [from, to] that other nodes logged and hold in
// memory until their next checkpoint (tailCTE), as one chunk numbered
// tailChunk.
func (s *Storage) Chunks(ctx context.Context, metricID, from, to int64, withData bool) ([]telemetry.Chunk, error) {
	data := `data`
	if !withData {
		data = `NULL::bytea`
	}
	// One statement, so one snapshot: a checkpoint that stores some of
	// another node's readings commits its chunks with its progress, and the
	// tail below starts after that progress, so no reading comes twice.
	r, err := s.pool.Query(ctx, tailCTE+`SELECT NULL::text, chunk_no, start_ts, end_ts, n, min, max, sum, `+data+`
		FROM reading_chunks WHERE metric_id = $1 AND end_ts >= $2 AND start_ts <= $3
		UNION ALL
		SELECT b.name, t.id, t.enqueued_at, 0, 0, 0, 0, 0, t.body FROM tail b CROSS JOIN LATERAL (`+tailMessages+`) t`,
		metricID, from, to, s.node)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []telemetry.Chunk
	var tail []telemetry.Point
	for r.Next() {
		var c telemetry.Chunk
		var metric *string
		if err := r.Scan(&metric, &c.No, &c.Start, &c.End, &c.N, &c.Min, &c.Max, &c.Sum, &c.Data); err != nil {
			return nil, err
		}
		if metric == nil {
			out = append(out, c)
			continue
		}
		// A message of the tail: its id, enqueued time and body.
		rec := telemetry.NewRecord(telemetry.Message{EnqueuedAt: storage.FromUnixMS(c.Start), Body: c.Data})
		for _, rd := range rec.Readings {
			if ts := rec.Time.UnixMilli(); rd.Metric == *metric && ts >= from && ts <= to {
				tail = append(tail, telemetry.Point{TS: ts, Value: rd.Value})
				break
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(tail) > 0 {
		out = append(out, telemetry.EncodeChunk(tailChunk, tail))
	}
	return out, nil
}

// tailChunk numbers the chunk of other nodes' readings not yet checkpointed
// that Chunks returns: below every stored or in-memory chunk's number.
const tailChunk = -1

// tailCTE finds, for a metric ($1), each node other than this one ($4)
// whose log holds messages of the metric's device that are not in the
// node's stored chunks of the metric: those after the node's watermark and
// after its progress with the metric, up to the newest message it logged.
// Their readings are only in that node's memory until its next checkpoint
// (up to 30 s). A node with nothing newer than its watermark (an idle one)
// is left out without reading the log.
const tailCTE = `WITH tail AS MATERIALIZED (
		SELECT n.id AS node, GREATEST(n.folded_message_id, p.through_msg) AS after, l.message_id AS upto,
			m.device_id, m.name
		FROM metrics m CROSS JOIN telemetry_nodes n JOIN telemetry_logged l ON l.node = n.id
		LEFT JOIN metric_progress p ON p.metric_id = m.id AND p.node = n.id
		WHERE m.id = $1 AND n.id <> $4 AND l.message_id > GREATEST(n.folded_message_id, p.through_msg))
	`

// tailMessages reads a tail row b's messages: an index range of the
// device's newest messages. OFFSET 0 keeps the planner from flattening it
// into a scan of every message of the device.
const tailMessages = `SELECT id, enqueued_at, body FROM messages
		WHERE device_id = b.device_id AND id > b.after AND id <= b.upto AND node = b.node OFFSET 0`

// Rollups reads a metric's rollup rows (every node's) and this node's
// progress with the metric in one statement: one snapshot of the database.
func (s *Storage) Rollups(ctx context.Context, metricID int64, t telemetry.Tier, from, to int64) (int64, []telemetry.Rollup, error) {
	table, err := t.RollupTable()
	if err != nil {
		return 0, nil, err
	}
	r, err := s.pool.Query(ctx, `SELECT COALESCE(p.through_msg, 0), r.bucket, r.n, r.min, r.max, r.sum
		FROM metrics m LEFT JOIN metric_progress p ON p.metric_id = m.id AND p.node = $2
		LEFT JOIN `+table+` r ON r.metric_id = m.id AND r.bucket >= $3 AND r.bucket <= $4
		WHERE m.id = $1 ORDER BY r.bucket`, metricID, s.node, from, to)
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	var through int64
	var out []telemetry.Rollup
	for r.Next() {
		var bucket, n *int64
		var lo, hi, sum *float64
		if err := r.Scan(&through, &bucket, &n, &lo, &hi, &sum); err != nil {
			return 0, nil, err
		}
		if bucket != nil {
			out = append(out, telemetry.Rollup{Bucket: *bucket, N: int(*n), Min: *lo, Max: *hi, Sum: *sum})
		}
	}
	return through, out, r.Err()
}

// ChunkData reads one stored chunk.
func (s *Storage) ChunkData(ctx context.Context, metricID, chunkNo int64) (n int, data []byte, err error) {
	err = s.pool.QueryRow(ctx, `SELECT n, data FROM reading_chunks WHERE metric_id = $1 AND chunk_no = $2`, metricID, chunkNo).Scan(&n, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("chunk %d of metric %d: %w", chunkNo, metricID, storage.ErrNotFound)
	}
	return n, data, err
}

// Messages lists a page of a device's messages, newest first.
func (s *Storage) Messages(ctx context.Context, deviceID string, f telemetry.MessageFilter) ([]telemetry.Message, error) {
	devID, err := s.deviceRowID(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	r, err := s.pool.Query(ctx, `SELECT id, enqueued_at, message_id, correlation_id, content_type,
		content_encoding, to_address, user_id, properties, auth_method, body
		FROM messages WHERE device_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, devID, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	defer r.Close()
	var out []telemetry.Message
	for r.Next() {
		m := telemetry.Message{DeviceID: deviceID}
		var at int64
		var props *string
		if err := r.Scan(&m.ID, &at, &m.MessageID, &m.CorrelationID, &m.ContentType, &m.ContentEncoding,
			&m.To, &m.UserID, &props, &m.AuthMethod, &m.Body); err != nil {
			return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
		}
		m.EnqueuedAt = storage.FromUnixMS(at)
		if props != nil {
			if err := json.Unmarshal([]byte(*props), &m.Properties); err != nil {
				return nil, fmt.Errorf("message %d: bad properties column: %w", m.ID, err)
			}
		}
		if m.Body == nil {
			m.Body = []byte{}
		}
		out = append(out, m)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("list messages of %q: %w", deviceID, err)
	}
	return out, nil
}

// text is s as PostgreSQL's text can hold it: a NUL or invalid UTF-8 (which
// a device may put in a message's system properties) becomes U+FFFD. A
// message is stored all the same, and one device cannot fail the group
// commit of every other device's messages.
func text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// claimKey is the first key of the advisory locks that claim nodes; the
// second is the node's id.
const claimKey = 0x66686e64 // "fhnd"

// claimWait bounds how long Claim waits for the node's claim: another
// instance may be folding the node's log (Fold) after it was found lost.
const claimWait = 2 * time.Minute

// Claim makes this storage the node's only writer until Close: it holds a
// session advisory lock on its own connection, waiting while another
// instance folds the node's log, and fails when a hub holds it throughout
// (two hubs started with one --node). Two hubs writing as one node would
// replay each other's messages and write each other's chunks.
func (s *Storage) Claim(ctx context.Context) error {
	ok, err := s.claim(ctx, true)
	if err != nil {
		return fmt.Errorf("claim telemetry node: %w", err)
	}
	if !ok {
		return fmt.Errorf("another hub writes telemetry into this database as the same node; give every instance its own --node")
	}
	return nil
}

// claim takes the node's advisory lock on a connection of its own, with
// keepalives that end the session (and the lock) within about 30 s of
// this process's machine vanishing: the server's defaults take hours.
func (s *Storage) claim(ctx context.Context, wait bool) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3`); err != nil {
		conn.Release()
		return false, err
	}
	var ok bool
	deadline := time.Now().Add(claimWait)
	for {
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, claimKey, s.node).Scan(&ok); err != nil {
			conn.Release()
			return false, err
		}
		if ok || !wait || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if !ok {
		conn.Release()
		return false, nil
	}
	s.claimed = conn
	return true, nil
}

// Close gives up the claim on the node, if any.
func (s *Storage) Close() {
	if s.claimed != nil {
		// Closing the connection ends its session, and the lock with it.
		s.claimed.Hijack().Close(context.Background())
		s.claimed = nil
	}
}

// Fold takes over a stopped node's log: under the node's claim, it
// rebuilds the node's time series from its messages after its watermark
// and checkpoints them, as the node itself would have at its next start.
// done is false when the node's claim is held: the node runs.
func Fold(ctx context.Context, pool *pgxpool.Pool, node string, log *slog.Logger) (done bool, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := New(ctx, pool, node)
	if err != nil {
		return false, err
	}
	ok, err := st.claim(ctx, false)
	if err != nil || !ok {
		return false, err
	}
	defer st.Close()
	eng, err := telemetry.Open(ctx, st, telemetry.Options{Logger: log})
	if err != nil {
		return false, fmt.Errorf("fold the telemetry of node %q: %w", node, err)
	}
	stats, err := eng.Checkpoint(ctx)
	if err != nil {
		return false, fmt.Errorf("fold the telemetry of node %q: %w", node, err)
	}
	if stats.Chunks > 0 {
		log.Info("folded a stopped instance's telemetry log", "node", node, "chunks", stats.Chunks, "watermark", stats.Watermark)
	}
	return true, nil
}

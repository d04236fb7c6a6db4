package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeTx is a telemetry.Tx on a connection of its own, in as few round
// trips as the engine allows: BEGIN goes out with the first statement, and
// the statements whose results nothing waits for (last activity, the
// watermark) go out with COMMIT. On a busy server each round trip costs a
// wake-up of the backend, and the group commit is the hub's ingest rate.
// pgx prepares and caches each statement per connection.
type writeTx struct {
	conn    *pgxpool.Conn
	s       *Storage
	begun   bool            // BEGIN was sent
	later   pgx.Batch       // sent with COMMIT
	checked bool            // checkMetrics ran
	ctx     context.Context // Begin's, which Commit has no other of
	done    bool            // committed or rolled back; the connection is back in the pool
	// pruneLock: 0 not asked yet, 1 this transaction holds the prune lock,
	// -1 another instance's transaction does.
	pruneLock int
	// logged is the newest message id this transaction logs (0: none).
	logged int64
}

// Begin starts a write transaction on a connection of the pool.
func (s *Storage) Begin(ctx context.Context) (telemetry.Tx, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &writeTx{conn: conn, s: s, ctx: ctx}, nil
}

// batch starts a batch of statements, with BEGIN first when it was not sent yet.
func (w *writeTx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if !w.begun {
		b.Queue("BEGIN")
		w.begun = true
	}
	return b
}

// query runs a statement now and reads its rows with fn.
func (w *writeTx) query(ctx context.Context, fn func(pgx.Rows) error, sql string, args ...any) error {
	b := w.batch()
	b.Queue(sql, args...).Query(fn)
	return w.conn.SendBatch(ctx, b).Close()
}

// exec runs a statement now.
func (w *writeTx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	b := w.batch()
	b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	err := w.conn.SendBatch(ctx, b).Close()
	return tag, err
}

// scanOne reads the one row of a query; found is false when there is none.
func (w *writeTx) scanOne(ctx context.Context, sql string, args []any, dest ...any) (found bool, err error) {
	err = w.query(ctx, func(r pgx.Rows) error {
		if r.Next() {
			found = true
			return r.Scan(dest...)
		}
		return r.Err()
	}, sql, args...)
	return found, err
}

func (w *writeTx) Commit() error {
	if w.done {
		return pgx.ErrTxClosed
	}
	ctx := w.ctx
	b := w.batch()
	b.QueuedQueries = append(b.QueuedQueries, w.later.QueuedQueries...)
	if w.logged > 0 {
		// Last before COMMIT: the row is locked the shortest time. Only this
		// node's single writer moves it. Queries on other instances read the
		// node's messages up to here that are not in chunks yet
		// (Storage.Chunks).
		b.Queue(`UPDATE telemetry_logged SET message_id = $1 WHERE node = $2`, w.logged, w.s.node)
	}
	committed := false
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
		// COMMIT of a failed transaction answers ROLLBACK, not an error.
		committed = ct.String() == "COMMIT"
		return nil
	})
	err := w.conn.SendBatch(ctx, b).Close()
	if err == nil && !committed {
		err = errors.New("commit: the transaction was rolled back")
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == devicesChanged {
		err = fmt.Errorf("%w: %v", telemetry.ErrDevicesChanged, err)
	}
	if err != nil {
		w.Rollback()
		return err
	}
	w.release()
	return nil
}

func (w *writeTx) Rollback() error {
	if w.done {
		return nil
	}
	var err error
	if w.begun && w.conn.Conn().PgConn().TxStatus() != 'I' {
		// Also when the caller's context ended: the connection goes back
		// to the pool clean.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 10*time.Second)
		defer cancel()
		_, err = w.conn.Exec(ctx, "ROLLBACK")
	}
	w.release()
	return err
}

// release gives the connection back (the pool closes it if a transaction
// is still open on it).
func (w *writeTx) release() {
	w.done = true
	w.conn.Release()
}

// FindDevice and DevicesCreated lock the rows they find until the
// transaction ends (FOR KEY SHARE, as a foreign key's check would, but once
// per device and commit rather than once per message: the message log has
// no foreign keys, see migration 0015): a device deleted meanwhile waits
// for the commit, and its messages are then deleted with it.
func (w *writeTx) FindDevice(ctx context.Context, deviceID string) (telemetry.DeviceRow, bool, error) {
	var dev telemetry.DeviceRow
	found, err := w.scanOne(ctx, `SELECT id, created_at FROM devices WHERE device_id = $1 FOR KEY SHARE`, []any{deviceID}, &dev.ID, &dev.Created)
	return dev, found && err == nil, err
}

func (w *writeTx) DevicesCreated(ctx context.Context, ids []int64) (map[int64]int64, error) {
	created := make(map[int64]int64, len(ids))
	err := w.query(ctx, func(r pgx.Rows) error {
		for r.Next() {
			var id, at int64
			if err := r.Scan(&id, &at); err != nil {
				return err
			}
			created[id] = at
		}
		return r.Err()
	}, `SELECT id, created_at FROM devices WHERE id = ANY($1) FOR KEY SHARE`, ids)
	return created, err
}

// CheckDevicesAtCommit locks the devices the engine has cached with the
// commit (lock_devices, migration 0015), sparing a round trip per group
// commit; a device that changed fails the commit with
// telemetry.ErrDevicesChanged. It goes out before the messages are logged.
func (w *writeTx) CheckDevicesAtCommit(ctx context.Context, devs []telemetry.DeviceRow) error {
	ids, created := make([]int64, len(devs)), make([]int64, len(devs))
	for i, d := range devs {
		ids[i], created[i] = d.ID, d.Created
	}
	w.later.Queue(`SELECT lock_devices($1, $2)`, ids, created)
	return nil
}

var _ telemetry.CheckAtCommit = (*writeTx)(nil)

// SQLSTATEs: lock_devices's, and a foreign key's.
const (
	devicesChanged      = "FH001"
	foreignKeyViolation = "23503"
)

// idBlock is how many message ids one nextval of message_ids reserves.
const idBlock = 1024

// reserveBlocks is how many blocks a reservation takes at least: a round
// trip of its own, which group commits of SDK batches (hundreds of messages
// each) needed every other commit when it took one block.
const reserveBlocks = 16

// messageIDs returns n new message ids, increasing, from the blocks the
// node reserved (reserving more when they run out).
func (w *writeTx) messageIDs(ctx context.Context, n int) ([]int64, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if short := n - len(w.s.ids); short > 0 {
		blocks := max((short+idBlock-1)/idBlock, reserveBlocks)
		var starts []int64
		err := w.query(ctx, func(r pgx.Rows) error {
			var err error
			starts, err = pgx.CollectRows(r, pgx.RowTo[int64])
			return err
		}, `SELECT nextval('message_ids') FROM generate_series(1, $1)`, blocks)
		if err != nil {
			return nil, fmt.Errorf("reserve message ids: %w", err)
		}
		// One session's nextvals grow; sorted for certain.
		slices.Sort(starts)
		for _, start := range starts {
			for id := start; id < start+idBlock; id++ {
				w.s.ids = append(w.s.ids, id)
			}
		}
	}
	ids := slices.Clone(w.s.ids[:n])
	w.s.ids = w.s.ids[n:]
	return ids, nil
}

// A row layout is the columns an INSERT of the log sends an array for.
// Most messages carry none of the optional system properties but their
// content type: the plain layout sends 6 arrays and leaves the other
// columns to their defaults (empty text, NULL), the full one sends all 12.
// Each array is decoded by the server element by element (bench/README.md,
// issue 11, third round). The stored rows are the same either way.
const (
	layoutFull = iota
	layoutPlain
	numLayouts
)

// insertMessages[l] logs the rows of layout l of a commit. Its arrays are
// unnested in the select list (a ProjectSet, one row at a time, in step)
// rather than in FROM: unnest in FROM is a function scan, which first
// copies every row into a tuplestore and then reads it back, a sixth of
// the server's time a message (issue 11, third round).
var insertMessages = [numLayouts]string{
	layoutFull: `INSERT INTO messages (node, id, device_id, enqueued_at, content_type, auth_method, body, message_id,
		correlation_id, content_encoding, to_address, user_id, properties)
		SELECT $1::integer, unnest($2::bigint[]), unnest($3::bigint[]), unnest($4::bigint[]), unnest($5::text[]),
			unnest($6::text[]), unnest($7::bytea[]), unnest($8::text[]), unnest($9::text[]), unnest($10::text[]),
			unnest($11::text[]), unnest($12::text[]), unnest($13::text[])`,
	layoutPlain: `INSERT INTO messages (node, id, device_id, enqueued_at, content_type, auth_method, body)
		SELECT $1::integer, unnest($2::bigint[]), unnest($3::bigint[]), unnest($4::bigint[]), unnest($5::text[]),
			unnest($6::text[]), unnest($7::bytea[])`,
}

// layoutOf is the row layout a message needs.
func layoutOf(m *telemetry.Message) int {
	if m.MessageID == "" && m.CorrelationID == "" && m.ContentEncoding == "" && m.To == "" && m.UserID == "" &&
		len(m.Properties) == 0 {
		return layoutPlain
	}
	return layoutFull
}

// logRows is one layout's rows of a commit, an array per column.
type logRows struct {
	ids, dev, at                []int64
	ctype, authm                []string
	bodies                      [][]byte
	msgID, corr, cenc, to, user []string
	props                       []*string
}

// add appends a row; the full layout's columns only in that layout.
func (l *logRows) add(layout int, id int64, r telemetry.MessageRow) error {
	m := r.Message
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	l.ids, l.dev, l.at = append(l.ids, id), append(l.dev, r.Device), append(l.at, storage.UnixMS(m.EnqueuedAt))
	l.ctype, l.authm, l.bodies = append(l.ctype, text(m.ContentType)), append(l.authm, text(m.AuthMethod)), append(l.bodies, body)
	if layout == layoutPlain {
		return nil
	}
	l.msgID, l.corr, l.cenc = append(l.msgID, text(m.MessageID)), append(l.corr, text(m.CorrelationID)), append(l.cenc, text(m.ContentEncoding))
	l.to, l.user = append(l.to, text(m.To)), append(l.user, text(m.UserID))
	var props *string
	if len(m.Properties) > 0 {
		b, err := json.Marshal(m.Properties)
		if err != nil {
			return fmt.Errorf("encode properties: %w", err)
		}
		p := string(b)
		props = &p
	}
	l.props = append(l.props, props)
	return nil
}

// args are the INSERT's parameters for layout.
func (l *logRows) args(layout int, node int32) []any {
	args := []any{node, l.ids, l.dev, l.at, l.ctype, l.authm, l.bodies}
	if layout == layoutFull {
		args = append(args, l.msgID, l.corr, l.cenc, l.to, l.user, l.props)
	}
	return args
}

// InsertMessages logs the messages in a statement for each row layout the
// commit has (one array per column, unnested into rows), sent with COMMIT:
// the ids come from the node's reserved blocks, so nothing here waits for
// the server. The rows' order in the table does not matter; their ids do.
func (w *writeTx) InsertMessages(ctx context.Context, rows []telemetry.MessageRow) ([]int64, error) {
	n := len(rows)
	ids, err := w.messageIDs(ctx, n)
	if err != nil {
		return nil, err
	}
	var by [numLayouts]logRows
	for i, r := range rows {
		layout := layoutOf(r.Message)
		if by[layout].ids == nil {
			by[layout] = newLogRows(layout, n)
		}
		if err := by[layout].add(layout, ids[i], r); err != nil {
			return nil, err
		}
	}
	for layout := range by {
		l := &by[layout]
		if len(l.ids) == 0 {
			continue
		}
		want := int64(len(l.ids))
		w.later.Queue(insertMessages[layout], l.args(layout, w.s.node)...).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != want {
				return fmt.Errorf("logged %d of %d messages", ct.RowsAffected(), want)
			}
			return nil
		})
	}
	w.logged = max(w.logged, ids[n-1])
	return ids, nil
}

// newLogRows has room for n rows of layout.
func newLogRows(layout, n int) logRows {
	l := logRows{ids: make([]int64, 0, n), dev: make([]int64, 0, n), at: make([]int64, 0, n),
		ctype: make([]string, 0, n), authm: make([]string, 0, n), bodies: make([][]byte, 0, n)}
	if layout == layoutFull {
		l.msgID, l.corr, l.cenc = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		l.to, l.user, l.props = make([]string, 0, n), make([]string, 0, n), make([]*string, 0, n)
	}
	return l
}

// TouchDevices moves last activity forward in one statement, in device id
// order so that hubs touching the same devices at once never deadlock. It
// goes out with COMMIT: a failure fails the commit.
func (w *writeTx) TouchDevices(ctx context.Context, at []telemetry.Activity) error {
	sorted := slices.Clone(at)
	slices.SortFunc(sorted, func(a, b telemetry.Activity) int { return int(a.Device.ID - b.Device.ID) })
	ids, created, times := make([]int64, len(sorted)), make([]int64, len(sorted)), make([]int64, len(sorted))
	for i, a := range sorted {
		ids[i], created[i], times[i] = a.Device.ID, a.Device.Created, a.At
	}
	w.later.Queue(`UPDATE devices d SET last_activity_at = GREATEST(COALESCE(d.last_activity_at, 0), u.at)
		FROM (SELECT id, MAX(created) AS created, MAX(at) AS at FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(id, created, at)
			GROUP BY id) u
		WHERE d.id = u.id AND d.created_at = u.created`, ids, created, times)
	return nil
}

func (w *writeTx) CreateMetric(ctx context.Context, dev telemetry.DeviceRow, name string) (telemetry.MetricRow, error) {
	m := telemetry.MetricRow{Device: dev, Name: name, LastChunk: w.s.chunkBase}
	created, err := w.scanOne(ctx, `INSERT INTO metrics (device_id, name) VALUES ($1, $2)
		ON CONFLICT (device_id, name) DO NOTHING RETURNING id`, []any{dev.ID, name}, &m.ID)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == foreignKeyViolation {
		// The device is gone: one the engine had cached, and checks only at
		// commit (CheckDevicesAtCommit).
		err = fmt.Errorf("%w: %v", telemetry.ErrDevicesChanged, err)
	}
	if created || err != nil {
		if created {
			w.s.mu.Lock()
			w.s.known[m.ID] = true
			w.s.mu.Unlock()
		}
		return m, err // new (no chunks, no last value), or failed
	}
	var last lastValue
	found, err := w.scanOne(ctx, `SELECT m.id, m.last_value, m.last_ts, COALESCE(p.through_msg, 0), `+lastChunk+`
		FROM metrics m LEFT JOIN metric_progress p ON p.metric_id = m.id AND p.node = $1
		WHERE m.device_id = $3 AND m.name = $4`, []any{w.s.node, w.s.chunkBase, dev.ID, name},
		&m.ID, &last.value, &last.ts, &m.Through, &m.LastChunk)
	if err == nil && !found {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return m, fmt.Errorf("find metric: %w", err)
	}
	w.s.mu.Lock()
	w.s.known[m.ID] = true
	w.s.mu.Unlock()
	last.set(&m)
	return m, nil
}

// A checkpoint step writes a few hundred metrics, each a chunk or two and
// its progress: a round trip each would hold the single writer, and ingest
// behind it, for hundreds of milliseconds on a busy server. So the writes of
// metrics known to exist go out with COMMIT, and the answer the engine needs
// now (is the metric still there, or was it deleted with its device?) comes
// from what the storage knows: the metric ids it saw exist, valid as long as
// no metric was deleted since (the sequence metric_deletions, which every
// DELETE on metrics moves). A metric deleted in the moment between that
// check and the commit makes its write find no row: the commit then fails,
// the knowledge is dropped, and the engine's retry gets exact answers.

// checkMetrics makes the storage's knowledge of existing metrics current,
// once per transaction, before the first write that relies on it.
func (w *writeTx) checkMetrics(ctx context.Context) error {
	if w.checked {
		return nil
	}
	var deletions int64
	if _, err := w.scanOne(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM metric_deletions`, nil, &deletions); err != nil {
		return fmt.Errorf("read metric deletions: %w", err)
	}
	w.s.mu.Lock()
	current := deletions == w.s.checkedAt
	var ids []int64
	if !current {
		ids = make([]int64, 0, len(w.s.known))
		for id := range w.s.known {
			ids = append(ids, id)
		}
	}
	w.s.mu.Unlock()
	if !current {
		exist := make(map[int64]bool, len(ids))
		err := w.query(ctx, func(r pgx.Rows) error {
			for r.Next() {
				var id int64
				if err := r.Scan(&id); err != nil {
					return err
				}
				exist[id] = true
			}
			return r.Err()
		}, `SELECT id FROM metrics WHERE id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("check metrics: %w", err)
		}
		w.s.mu.Lock()
		w.s.known, w.s.checkedAt = exist, deletions
		w.s.mu.Unlock()
	}
	w.checked = true
	return nil
}

// writeMetric runs a write of metric id (a statement that changes one row
// when the metric exists): with COMMIT when the metric is known to exist,
// else now. ok is false when the metric is gone.
func (w *writeTx) writeMetric(ctx context.Context, id int64, sql string, args ...any) (ok bool, err error) {
	if err := w.checkMetrics(ctx); err != nil {
		return false, err
	}
	w.s.mu.Lock()
	known := w.s.known[id]
	w.s.mu.Unlock()
	if known {
		w.later.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() == 0 {
				w.s.forget()
				return fmt.Errorf("metric %d was deleted during the checkpoint; the step is written again", id)
			}
			return nil
		})
		return true, nil
	}
	tag, err := w.exec(ctx, sql, args...)
	if err != nil {
		w.s.forget()
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	w.s.mu.Lock()
	w.s.known[id] = true
	w.s.mu.Unlock()
	return true, nil
}

func (w *writeTx) PutChunk(ctx context.Context, metricID int64, c telemetry.Chunk) (bool, error) {
	return w.writeMetric(ctx, metricID, `INSERT INTO reading_chunks (metric_id, chunk_no, node, start_ts, end_ts, n, min, max, sum, data)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM metrics WHERE id = $1)
		ON CONFLICT (metric_id, chunk_no) DO UPDATE SET start_ts = excluded.start_ts, end_ts = excluded.end_ts,
			n = excluded.n, min = excluded.min, max = excluded.max, sum = excluded.sum, data = excluded.data`,
		metricID, c.No, w.s.node, c.Start, c.End, c.N, c.Min, c.Max, c.Sum, c.Data)
}

// AddRollups adds a metric's buckets in one statement (one array per
// column), with COMMIT when the metric is known to exist. Nodes adding to
// the same buckets at once wait for each other's row locks; buckets come in
// order and metrics in id order, so they never deadlock.
func (w *writeTx) AddRollups(ctx context.Context, metricID int64, t telemetry.Tier, rows []telemetry.Rollup) (bool, error) {
	table, err := t.RollupTable()
	if err != nil {
		return false, err
	}
	if len(rows) == 0 {
		return true, nil
	}
	buckets, ns := make([]int64, len(rows)), make([]int64, len(rows))
	lo, hi, sum := make([]float64, len(rows)), make([]float64, len(rows)), make([]float64, len(rows))
	for i, r := range rows {
		buckets[i], ns[i], lo[i], hi[i], sum[i] = r.Bucket, int64(r.N), r.Min, r.Max, r.Sum
	}
	return w.writeMetric(ctx, metricID, `INSERT INTO `+table+` AS t (metric_id, bucket, n, min, max, sum)
		SELECT $1, r.bucket, r.n, r.min, r.max, r.sum
		FROM unnest($2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[]) AS r(bucket, n, min, max, sum)
		WHERE EXISTS (SELECT 1 FROM metrics WHERE id = $1)
		ON CONFLICT (metric_id, bucket) DO UPDATE SET n = t.n + excluded.n, min = LEAST(t.min, excluded.min),
			max = GREATEST(t.max, excluded.max), sum = t.sum + excluded.sum`,
		metricID, buckets, ns, lo, hi, sum)
}

func (w *writeTx) UpdateMetric(ctx context.Context, metricID, through int64, last *telemetry.Point) (bool, error) {
	var value *float64 // NULL keeps the stored ones
	var ts *int64
	if last != nil {
		value, ts = &last.Value, &last.TS
	}
	return w.writeMetric(ctx, metricID, `WITH m AS (
			UPDATE metrics SET last_value = COALESCE($1, last_value), last_ts = COALESCE($2, last_ts) WHERE id = $3 RETURNING id)
		INSERT INTO metric_progress (metric_id, node, through_msg) SELECT id, $4, $5 FROM m
		ON CONFLICT (metric_id, node) DO UPDATE SET through_msg = excluded.through_msg`,
		value, ts, metricID, w.s.node, through)
}

// SetWatermark goes out with COMMIT.
func (w *writeTx) SetWatermark(ctx context.Context, id int64) error {
	w.later.Queue(`UPDATE telemetry_nodes SET folded_message_id = $1 WHERE id = $2`, id, w.s.node)
	return nil
}

// pruneKey is the advisory lock that makes pruning a cluster's work done
// once at a time: one instance prunes the whole log and every chunk, the
// others find the lock taken and leave it (their next pass may get it).
const pruneKey = 0x66687072 // "fhpr"

// pruning takes the prune lock for the transaction, once; false when
// another instance prunes now.
func (w *writeTx) pruning(ctx context.Context) (bool, error) {
	if w.pruneLock == 0 {
		var ok bool
		if _, err := w.scanOne(ctx, `SELECT pg_try_advisory_xact_lock($1)`, []any{pruneKey}, &ok); err != nil {
			return false, fmt.Errorf("take the prune lock: %w", err)
		}
		w.pruneLock = -1
		if ok {
			w.pruneLock = 1
		}
	}
	return w.pruneLock > 0, nil
}

// DeleteMessages deletes old messages of every node: this node's up to
// through, another's up to its own watermark (what its checkpoints, or
// the fold of it, stored in chunks).
func (w *writeTx) DeleteMessages(ctx context.Context, cutoff time.Time, through int64, limit int) (int, error) {
	if ok, err := w.pruning(ctx); !ok || err != nil {
		return 0, err
	}
	tag, err := w.exec(ctx, `DELETE FROM messages WHERE id IN (
		SELECT o.id FROM (SELECT id, node, enqueued_at FROM messages ORDER BY id LIMIT $2) o
		JOIN telemetry_nodes n ON n.id = o.node
		WHERE o.enqueued_at < $3 AND o.id <= CASE WHEN o.node = $1 THEN $4 ELSE n.folded_message_id END)`,
		w.s.node, limit, storage.UnixMS(cutoff), through)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// DeleteRollups looks for old rows metric by metric, along the primary
// key, rather than scanning the table.
func (w *writeTx) DeleteRollups(ctx context.Context, t telemetry.Tier, cutoff int64, limit int) (int, error) {
	table, err := t.RollupTable()
	if err != nil {
		return 0, err
	}
	tag, err := w.exec(ctx, `DELETE FROM `+table+` WHERE (metric_id, bucket) IN (
		SELECT o.metric_id, o.bucket FROM metrics m CROSS JOIN LATERAL (
			SELECT metric_id, bucket FROM `+table+` WHERE metric_id = m.id AND bucket < $1 LIMIT $2) o
		LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (w *writeTx) DeleteChunks(ctx context.Context, cutoff int64, limit int) (int, error) {
	if ok, err := w.pruning(ctx); !ok || err != nil {
		return 0, err
	}
	tag, err := w.exec(ctx, `DELETE FROM reading_chunks WHERE (metric_id, chunk_no) IN (
		SELECT metric_id, chunk_no FROM reading_chunks WHERE end_ts < $1 LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

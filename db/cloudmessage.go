package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fieldhub/storage"
	"fmt"
	"time"
)

// Cloud-to-device message states. A message waits as queued (or abandoned, which
// is queued again after a device gave it back), is locked while a device holds it,
// and ends in exactly one of the final states.
const (
	CloudQueued    = "queued"
	CloudLocked    = "locked"
	CloudCompleted = "completed"
	CloudRejected  = "rejected"
	CloudAbandoned = "abandoned"
	CloudExpired   = "expired"
	CloudDead      = "dead" // delivery count exhausted
	CloudPurged    = "purged"
)

// Settlements a device may give a locked message.
const (
	SettleComplete = "complete"
	SettleReject   = "reject"
	SettleAbandon  = "abandon"
)

// Errors of the cloud-to-device queue.
var (
	// ErrQueueFull refuses a message when the most allowed are already waiting.
	ErrQueueFull = errors.New("cloud-to-device queue is full")
	// ErrQueueEmpty means no message is waiting for the device.
	ErrQueueEmpty = errors.New("no cloud-to-device message waiting")
	// ErrLockLost means the lock token is unknown, already settled or expired.
	ErrLockLost = errors.New("lock token is unknown or expired")
)

// CloudMessage is one cloud-to-device message and where it stands.
type CloudMessage struct {
	ID               int64 // queue sequence number
	DeviceID         string
	MessageID        string
	CorrelationID    string
	Body             []byte
	Properties       map[string]string
	State            string
	LockToken        string    // set while locked
	LockExpiresAt    time.Time // set while locked
	ExpiresAt        time.Time
	DeliveryCount    int
	MaxDeliveryCount int
	Sender           string
	EnqueuedAt       time.Time
	UpdatedAt        time.Time
	SettledAt        time.Time // zero until final
}

// TTL is how long the message may wait, as it was queued.
func (m CloudMessage) TTL() time.Duration { return m.ExpiresAt.Sub(m.EnqueuedAt) }

// Final reports whether the message reached a state it never leaves.
func (m CloudMessage) Final() bool { return IsFinalCloudState(m.State) }

// IsFinalCloudState reports whether state is one a message never leaves.
func IsFinalCloudState(state string) bool {
	switch state {
	case CloudCompleted, CloudRejected, CloudExpired, CloudDead, CloudPurged:
		return true
	}
	return false
}

// NewCloudMessage is what EnqueueCloudMessage needs, checked against the
// limits and with defaults filled in (package commands does both).
type NewCloudMessage struct {
	DeviceID         string
	MessageID        string // generated when empty
	CorrelationID    string
	Body             []byte
	Properties       map[string]string
	TTL              time.Duration
	MaxDeliveryCount int
	Sender           string
}

// NewUUID is a random RFC 4122 version 4 UUID, the shape Azure uses for ids and lock tokens.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

const CloudColumns = `m.id, d.device_id, m.message_id, m.correlation_id, m.body, m.properties, m.state,
	m.lock_token, m.lock_expires_at, m.expires_at, m.delivery_count, m.max_delivery_count, m.sender,
	m.enqueued_at, m.updated_at, m.settled_at`

const CloudFrom = ` FROM cloud_messages m JOIN devices d ON d.id = m.device_id`

func ScanCloudMessage(s Scanner) (CloudMessage, error) {
	var (
		m                         CloudMessage
		props                     string
		lock                      sql.NullString
		lockExp, settled          sql.NullInt64
		expires, enqueued, update int64
	)
	if err := s.Scan(&m.ID, &m.DeviceID, &m.MessageID, &m.CorrelationID, &m.Body, &props, &m.State,
		&lock, &lockExp, &expires, &m.DeliveryCount, &m.MaxDeliveryCount, &m.Sender,
		&enqueued, &update, &settled); err != nil {
		return CloudMessage{}, err
	}
	m.LockToken = lock.String
	m.LockExpiresAt, m.SettledAt = nullMS(lockExp), nullMS(settled)
	m.ExpiresAt, m.EnqueuedAt, m.UpdatedAt = fromMS(expires), fromMS(enqueued), fromMS(update)
	m.Properties = map[string]string{}
	if err := json.Unmarshal([]byte(props), &m.Properties); err != nil {
		return CloudMessage{}, fmt.Errorf("cloud message %d: bad properties column: %w", m.ID, err)
	}
	if m.Body == nil {
		m.Body = []byte{}
	}
	return m, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryCloudMessages(ctx context.Context, q querier, where string, args ...any) ([]CloudMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+CloudColumns+CloudFrom+` WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CloudMessage
	for rows.Next() {
		m, err := ScanCloudMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func deviceRowID(ctx context.Context, tx *sql.Tx, deviceID string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, deviceID).Scan(&id)
	if err := translate(err); err != nil {
		return 0, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return id, nil
}

// EnqueueCloudMessage queues a message for a device, refusing it with ErrQueueFull
// when maxWaiting messages are already waiting or locked.
func (d *DB) EnqueueCloudMessage(ctx context.Context, nm NewCloudMessage, maxWaiting int) (CloudMessage, error) {
	nm, err := nm.Prepare()
	if err != nil {
		return CloudMessage{}, err
	}
	props, _ := json.Marshal(nm.Properties)
	now := ms(d.Now())
	var m CloudMessage
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		dev, err := deviceRowID(ctx, tx, nm.DeviceID)
		if err != nil {
			return err
		}
		// Count what is still alive at this instant, whether or not the sweeper has
		// caught up with the deadlines yet.
		var waiting int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM cloud_messages WHERE device_id = ? AND (
			(state IN ('queued', 'abandoned') AND expires_at > ?) OR
			(state = 'locked' AND (lock_expires_at > ? OR expires_at > ?)))`, dev, now, now, now).Scan(&waiting); err != nil {
			return err
		}
		if waiting >= maxWaiting {
			return QueueFullError(nm.DeviceID, waiting)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO cloud_messages (device_id, message_id, correlation_id, body, properties,
			state, expires_at, delivery_count, max_delivery_count, sender, enqueued_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?)`,
			dev, nm.MessageID, nm.CorrelationID, nm.Body, string(props), now+nm.TTL.Milliseconds(),
			nm.MaxDeliveryCount, nm.Sender, now, now)
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		m, err = cloudMessageTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return CloudMessage{}, WrapUnlessNotFound("queue cloud message", err)
	}
	return m, nil
}

// Prepare checks nm and fills in its defaults (a message id, empty
// properties and body); every store queues messages through it.
func (nm NewCloudMessage) Prepare() (NewCloudMessage, error) {
	if nm.TTL <= 0 || nm.MaxDeliveryCount < 1 {
		return nm, fmt.Errorf("queue cloud message: TTL %s and max delivery count %d must be positive", nm.TTL, nm.MaxDeliveryCount)
	}
	if nm.MessageID == "" {
		nm.MessageID = NewUUID()
	}
	if nm.Properties == nil {
		nm.Properties = map[string]string{}
	}
	if nm.Body == nil {
		nm.Body = []byte{}
	}
	return nm, nil
}

// QueueFullError refuses a message for a device with waiting messages.
func QueueFullError(deviceID string, waiting int) error {
	return fmt.Errorf("device %q has %d messages waiting, the most allowed; wait for the device to take some or purge the queue: %w",
		deviceID, waiting, ErrQueueFull)
}

func cloudMessageTx(ctx context.Context, tx *sql.Tx, id int64) (CloudMessage, error) {
	m, err := ScanCloudMessage(tx.QueryRowContext(ctx, `SELECT `+CloudColumns+CloudFrom+` WHERE m.id = ?`, id))
	return m, translate(err)
}

// CloudMessage reads one message by its sequence number.
func (d *DB) CloudMessage(ctx context.Context, id int64) (CloudMessage, error) {
	m, err := ScanCloudMessage(d.read.QueryRowContext(ctx, `SELECT `+CloudColumns+CloudFrom+` WHERE m.id = ?`, id))
	if err := translate(err); err != nil {
		return CloudMessage{}, fmt.Errorf("cloud message %d: %w", id, err)
	}
	return m, nil
}

// ReceiveCloudMessage locks the oldest waiting message of a device for lockFor and
// counts the delivery. It returns ErrQueueEmpty when nothing is waiting. Deadlines
// that passed are applied first, so the answer is right even if the sweeper lags;
// every message they changed is returned too, for live updates.
func (d *DB) ReceiveCloudMessage(ctx context.Context, deviceID string, lockFor time.Duration) (CloudMessage, []CloudMessage, error) {
	if lockFor <= 0 {
		return CloudMessage{}, nil, fmt.Errorf("receive cloud message: lock time %s must be positive", lockFor)
	}
	now := ms(d.Now())
	var (
		m       CloudMessage
		changed []CloudMessage
	)
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		dev, err := deviceRowID(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		if changed, err = applyCloudDeadlines(ctx, tx, now, dev); err != nil {
			return err
		}
		var id int64
		err = tx.QueryRowContext(ctx, `SELECT id FROM cloud_messages WHERE device_id = ? AND state IN ('queued', 'abandoned')
			ORDER BY id LIMIT 1`, dev).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrQueueEmpty
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cloud_messages SET state = 'locked', lock_token = ?, lock_expires_at = ?,
			delivery_count = delivery_count + 1, updated_at = ? WHERE id = ?`, NewUUID(), now+lockFor.Milliseconds(), now, id); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, id)
		return err
	})
	if errors.Is(err, ErrQueueEmpty) {
		return CloudMessage{}, changed, ErrQueueEmpty
	}
	if err != nil {
		return CloudMessage{}, nil, WrapUnlessNotFound(fmt.Sprintf("receive cloud message for %q", deviceID), err)
	}
	return m, changed, nil
}

// SettleCloudMessage applies a device's settlement (SettleComplete, SettleReject,
// SettleAbandon) to the message it holds under lockToken. It returns ErrLockLost
// when no message of this device is locked under that token or the lock expired.
// An abandoned message goes back to the queue unless its deliveries are exhausted
// (dead) or its time to live passed (expired).
func (d *DB) SettleCloudMessage(ctx context.Context, deviceID, lockToken, settlement string) (CloudMessage, error) {
	if err := ValidateSettlement(settlement); err != nil {
		return CloudMessage{}, err
	}
	now := ms(d.Now())
	var m CloudMessage
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		l, err := lockedCloudMessage(ctx, tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		state := SettledState(settlement, now, l.expires, l.count, l.maxCount)
		if err := setCloudState(ctx, tx, l.id, state, now); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, l.id)
		return err
	})
	if err != nil {
		return CloudMessage{}, WrapUnlessNotFound(fmt.Sprintf("%s cloud message of %q", settlement, deviceID), err)
	}
	return m, nil
}

// ReleaseCloudMessage gives back a message locked under lockToken that never
// reached the device: the connection it was taken for ended before it was
// sent. Unlike an abandon it does not count as a delivery, so a message is
// never dead-lettered without having been sent. It goes back to the queue
// as it was (queued, or abandoned after earlier deliveries) unless its time
// to live passed. It returns ErrLockLost as SettleCloudMessage does.
func (d *DB) ReleaseCloudMessage(ctx context.Context, deviceID, lockToken string) (CloudMessage, error) {
	now := ms(d.Now())
	var m CloudMessage
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		l, err := lockedCloudMessage(ctx, tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		count := l.count - 1
		if _, err := tx.ExecContext(ctx, `UPDATE cloud_messages SET delivery_count = ? WHERE id = ?`, count, l.id); err != nil {
			return err
		}
		if err := setCloudState(ctx, tx, l.id, ReleasedState(now, l.expires, count, l.maxCount), now); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, l.id)
		return err
	})
	if err != nil {
		return CloudMessage{}, WrapUnlessNotFound(fmt.Sprintf("release cloud message of %q", deviceID), err)
	}
	return m, nil
}

// lockedMessage is what settling a locked message needs to know of it.
type lockedMessage struct {
	id, expires     int64
	count, maxCount int
}

// lockedCloudMessage finds the device's message locked under lockToken, or
// ErrLockLost when there is none or its lock expired.
func lockedCloudMessage(ctx context.Context, tx *sql.Tx, deviceID, lockToken string, now int64) (lockedMessage, error) {
	var (
		l       lockedMessage
		lockExp int64
	)
	err := tx.QueryRowContext(ctx, `SELECT m.id, m.lock_expires_at, m.expires_at, m.delivery_count, m.max_delivery_count
		FROM cloud_messages m JOIN devices d ON d.id = m.device_id
		WHERE d.device_id = ? AND m.lock_token = ? AND m.state = 'locked'`, deviceID, lockToken).
		Scan(&l.id, &lockExp, &l.expires, &l.count, &l.maxCount)
	if errors.Is(err, sql.ErrNoRows) || err == nil && lockExp <= now {
		return lockedMessage{}, ErrLockLost
	}
	return l, err
}

// ValidateSettlement accepts the settlements a device may give.
func ValidateSettlement(settlement string) error {
	switch settlement {
	case SettleComplete, SettleReject, SettleAbandon:
		return nil
	}
	return invalid("settlement", "unknown settlement %q; use complete, reject or abandon", settlement)
}

// SettledState is where a locked message goes when a device settles it
// (a valid settlement) at now (Unix ms); expires, count and maxCount are
// its deadline and deliveries.
func SettledState(settlement string, now, expires int64, count, maxCount int) string {
	switch settlement {
	case SettleComplete:
		return CloudCompleted
	case SettleReject:
		return CloudRejected
	}
	return RequeueState(CloudAbandoned, now, expires, count, maxCount)
}

// ReleasedState is where a locked message goes when it is given back
// unsent: count is its delivery count without this delivery.
func ReleasedState(now, expires int64, count, maxCount int) string {
	want := CloudQueued
	if count > 0 {
		want = CloudAbandoned
	}
	return RequeueState(want, now, expires, count, maxCount)
}

// ExpiredState is where a message whose deadline passed at now goes:
// expired when it was waiting, back to the queue (or dead, or expired)
// when its lock ran out.
func ExpiredState(m CloudMessage, now int64) string {
	if m.State == CloudLocked {
		return RequeueState(CloudQueued, now, ms(m.ExpiresAt), m.DeliveryCount, m.MaxDeliveryCount)
	}
	return CloudExpired
}

// RequeueState is where a message given back (abandoned, or its lock expired) goes:
// waiting again as want, unless it can no longer be delivered.
func RequeueState(want string, now, expires int64, count, maxCount int) string {
	switch {
	case expires <= now:
		return CloudExpired
	case count >= maxCount:
		return CloudDead
	}
	return want
}

// setCloudState moves a message to state, dropping its lock and stamping
// settled_at when the state is final.
func setCloudState(ctx context.Context, tx *sql.Tx, id int64, state string, now int64) error {
	var settled any
	if IsFinalCloudState(state) {
		settled = now
	}
	_, err := tx.ExecContext(ctx, `UPDATE cloud_messages SET state = ?, lock_token = NULL, lock_expires_at = NULL,
		updated_at = ?, settled_at = ? WHERE id = ?`, state, now, settled, id)
	return err
}

// applyCloudDeadlines expires waiting messages whose time to live passed and takes
// back messages whose lock expired; dev 0 means every device. It returns the
// messages it changed.
func applyCloudDeadlines(ctx context.Context, tx *sql.Tx, now, dev int64) ([]CloudMessage, error) {
	where := `((m.state IN ('queued', 'abandoned') AND m.expires_at <= ?) OR (m.state = 'locked' AND m.lock_expires_at <= ?))`
	args := []any{now, now}
	if dev != 0 {
		where += ` AND m.device_id = ?`
		args = append(args, dev)
	}
	due, err := queryCloudMessages(ctx, tx, where+` ORDER BY m.id`, args...)
	if err != nil {
		return nil, err
	}
	for i, m := range due {
		if err := setCloudState(ctx, tx, m.ID, ExpiredState(m, now), now); err != nil {
			return nil, err
		}
		if due[i], err = cloudMessageTx(ctx, tx, m.ID); err != nil {
			return nil, err
		}
	}
	return due, nil
}

// ApplyCloudMessageDeadlines applies every passed deadline (time to live, lock) of
// every device and returns the messages it changed. The sweeper calls it.
func (d *DB) ApplyCloudMessageDeadlines(ctx context.Context) ([]CloudMessage, error) {
	now := ms(d.Now())
	var changed []CloudMessage
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		changed, err = applyCloudDeadlines(ctx, tx, now, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply cloud message deadlines: %w", err)
	}
	return changed, nil
}

// NextCloudMessageDeadline is the earliest pending expiry or lock expiry, or the
// zero time when no message is waiting or locked.
func (d *DB) NextCloudMessageDeadline(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT MIN(t) FROM (
		SELECT MIN(expires_at) AS t FROM cloud_messages WHERE state IN ('queued', 'abandoned')
		UNION ALL
		SELECT MIN(lock_expires_at) FROM cloud_messages WHERE state = 'locked')`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next cloud message deadline: %w", err)
	}
	return nullMS(next), nil
}

// PurgeCloudMessages ends every waiting or locked message of a device as purged
// and returns them.
func (d *DB) PurgeCloudMessages(ctx context.Context, deviceID string) ([]CloudMessage, error) {
	now := ms(d.Now())
	var purged []CloudMessage
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		dev, err := deviceRowID(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		live, err := queryCloudMessages(ctx, tx, `m.device_id = ? AND m.state IN ('queued', 'abandoned', 'locked') ORDER BY m.id`, dev)
		if err != nil {
			return err
		}
		for _, m := range live {
			if err := setCloudState(ctx, tx, m.ID, CloudPurged, now); err != nil {
				return err
			}
			m, err = cloudMessageTx(ctx, tx, m.ID)
			if err != nil {
				return err
			}
			purged = append(purged, m)
		}
		return nil
	})
	if err != nil {
		return nil, WrapUnlessNotFound(fmt.Sprintf("purge cloud messages of %q", deviceID), err)
	}
	return purged, nil
}

// CloudHistoryLimit is how many messages CloudMessages lists for limit.
func CloudHistoryLimit(limit int) int {
	if limit <= 0 || limit > 1000 {
		return 100
	}
	return limit
}

// CloudMessageCounts counts cloud-to-device messages by state (those
// retention has not deleted yet); a state no message is in is absent.
func (d *DB) CloudMessageCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT state, count(*) FROM cloud_messages GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count cloud messages: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count cloud messages: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count cloud messages: %w", err)
	}
	return out, nil
}

// CloudMessages is a device's message history, newest first, at most limit (default 100).
func (d *DB) CloudMessages(ctx context.Context, deviceID string, limit int) ([]CloudMessage, error) {
	limit = CloudHistoryLimit(limit)
	if _, err := d.Device(ctx, deviceID); err != nil {
		return nil, err
	}
	out, err := queryCloudMessages(ctx, d.read, fmt.Sprintf(`d.device_id = ? ORDER BY m.id DESC LIMIT %d`, limit), deviceID)
	if err != nil {
		return nil, fmt.Errorf("list cloud messages of %q: %w", deviceID, err)
	}
	return out, nil
}

// PruneCloudMessages deletes messages that reached a final state before cutoff.
func (d *DB) PruneCloudMessages(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM cloud_messages WHERE settled_at IS NOT NULL AND settled_at < ?`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune cloud messages: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// WrapUnlessNotFound adds context to err, except to "device \"x\": not found",
// which already says everything and is shown to clients as it is.
func WrapUnlessNotFound(what string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// The cloud-to-device queue. Every change holds the rows it changes: a
// device's next message is taken with FOR UPDATE SKIP LOCKED, so hubs
// receiving for one device at once take different messages, and deadlines
// are applied to rows locked the same way, so each expiry happens once
// however many hubs sweep.

// cloudMessages reads messages (db.CloudColumns) with a query.
func cloudMessages(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]db.CloudMessage, error) {
	r, err := q.Query(ctx, sql, args...)
	return rows(r, err, func(r pgx.Rows) (db.CloudMessage, error) { return db.ScanCloudMessage(r) })
}

func cloudMessageTx(ctx context.Context, tx pgx.Tx, id int64) (db.CloudMessage, error) {
	m, err := db.ScanCloudMessage(tx.QueryRow(ctx, `SELECT `+db.CloudColumns+db.CloudFrom+` WHERE m.id = $1`, id))
	return m, translate(err)
}

// lockDevice finds a device's internal id and holds its row until the
// transaction ends, so that hubs changing one device's queue at once take
// turns (NO KEY: new rows referring to it are not blocked).
func lockDevice(ctx context.Context, tx pgx.Tx, deviceID string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1 FOR NO KEY UPDATE`, deviceID).Scan(&id)
	if err := translate(err); err != nil {
		return 0, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return id, nil
}

// EnqueueCloudMessage queues a message for a device, refusing it with
// db.ErrQueueFull when maxWaiting messages are already waiting or locked.
func (s *Store) EnqueueCloudMessage(ctx context.Context, nm db.NewCloudMessage, maxWaiting int) (db.CloudMessage, error) {
	nm, err := nm.Prepare()
	if err != nil {
		return db.CloudMessage{}, err
	}
	props, _ := json.Marshal(nm.Properties)
	now := ms(s.Now())
	var m db.CloudMessage
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		dev, err := lockDevice(ctx, tx, nm.DeviceID)
		if err != nil {
			return err
		}
		var waiting int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM cloud_messages WHERE device_id = $1 AND (
			(state IN ('queued', 'abandoned') AND expires_at > $2) OR
			(state = 'locked' AND (lock_expires_at > $2 OR expires_at > $2)))`, dev, now).Scan(&waiting); err != nil {
			return err
		}
		if waiting >= maxWaiting {
			return db.QueueFullError(nm.DeviceID, waiting)
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO cloud_messages (device_id, message_id, correlation_id, body, properties,
			state, expires_at, delivery_count, max_delivery_count, sender, enqueued_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, $8, $9, $9) RETURNING id`,
			dev, nm.MessageID, nm.CorrelationID, nm.Body, string(props), now+nm.TTL.Milliseconds(),
			nm.MaxDeliveryCount, nm.Sender, now).Scan(&id); err != nil {
			return translate(err)
		}
		m, err = cloudMessageTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return db.CloudMessage{}, db.WrapUnlessNotFound("queue cloud message", err)
	}
	return m, nil
}

// CloudMessage reads one message by its sequence number.
func (s *Store) CloudMessage(ctx context.Context, id int64) (db.CloudMessage, error) {
	m, err := db.ScanCloudMessage(s.pool.QueryRow(ctx, `SELECT `+db.CloudColumns+db.CloudFrom+` WHERE m.id = $1`, id))
	if err := translate(err); err != nil {
		return db.CloudMessage{}, fmt.Errorf("cloud message %d: %w", id, err)
	}
	return m, nil
}

// ReceiveCloudMessage locks the oldest waiting message of a device for
// lockFor and counts the delivery; db.ErrQueueEmpty when nothing is
// waiting. Deadlines that passed are applied first; the messages they
// changed are returned too.
func (s *Store) ReceiveCloudMessage(ctx context.Context, deviceID string, lockFor time.Duration) (db.CloudMessage, []db.CloudMessage, error) {
	if lockFor <= 0 {
		return db.CloudMessage{}, nil, fmt.Errorf("receive cloud message: lock time %s must be positive", lockFor)
	}
	now := ms(s.Now())
	var (
		m       db.CloudMessage
		changed []db.CloudMessage
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var dev int64
		err := tx.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1`, deviceID).Scan(&dev)
		if err := translate(err); err != nil {
			return fmt.Errorf("device %q: %w", deviceID, err)
		}
		if changed, err = applyDeadlines(ctx, tx, now, dev); err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `SELECT id FROM cloud_messages WHERE device_id = $1 AND state IN ('queued', 'abandoned')
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, dev).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return db.ErrQueueEmpty
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE cloud_messages SET state = 'locked', lock_token = $1, lock_expires_at = $2,
			delivery_count = delivery_count + 1, updated_at = $3, locked_node = NULLIF($5, '') WHERE id = $4`,
			db.NewUUID(), now+lockFor.Milliseconds(), now, id, s.Node); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, id)
		return err
	})
	if errors.Is(err, db.ErrQueueEmpty) {
		// The deadlines applied were committed with the empty answer.
		return db.CloudMessage{}, changed, db.ErrQueueEmpty
	}
	if err != nil {
		return db.CloudMessage{}, nil, db.WrapUnlessNotFound(fmt.Sprintf("receive cloud message for %q", deviceID), err)
	}
	return m, changed, nil
}

// lockedMessage is what settling a locked message needs to know of it.
type lockedMessage struct {
	id, expires     int64
	count, maxCount int
}

// lockedCloudMessage finds and holds the device's message locked under
// lockToken, or db.ErrLockLost when there is none or its lock expired.
func lockedCloudMessage(ctx context.Context, tx pgx.Tx, deviceID, lockToken string, now int64) (lockedMessage, error) {
	var (
		l       lockedMessage
		lockExp int64
	)
	err := tx.QueryRow(ctx, `SELECT m.id, m.lock_expires_at, m.expires_at, m.delivery_count, m.max_delivery_count
		FROM cloud_messages m JOIN devices d ON d.id = m.device_id
		WHERE d.device_id = $1 AND m.lock_token = $2 AND m.state = 'locked' FOR UPDATE OF m`, deviceID, lockToken).
		Scan(&l.id, &lockExp, &l.expires, &l.count, &l.maxCount)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && lockExp <= now {
		return lockedMessage{}, db.ErrLockLost
	}
	return l, err
}

// setCloudState moves a message to state, dropping its lock and stamping
// settled_at when the state is final.
func setCloudState(ctx context.Context, tx pgx.Tx, id int64, state string, now int64) error {
	var settled *int64
	if db.IsFinalCloudState(state) {
		settled = &now
	}
	_, err := tx.Exec(ctx, `UPDATE cloud_messages SET state = $1, lock_token = NULL, lock_expires_at = NULL,
		locked_node = NULL, updated_at = $2, settled_at = $3 WHERE id = $4`, state, now, settled, id)
	return err
}

// SettleCloudMessage applies a device's settlement to the message it holds
// under lockToken (db.SettledState has the rules).
func (s *Store) SettleCloudMessage(ctx context.Context, deviceID, lockToken, settlement string) (db.CloudMessage, error) {
	if err := db.ValidateSettlement(settlement); err != nil {
		return db.CloudMessage{}, err
	}
	now := ms(s.Now())
	var m db.CloudMessage
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		l, err := lockedCloudMessage(ctx, tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		if err := setCloudState(ctx, tx, l.id, db.SettledState(settlement, now, l.expires, l.count, l.maxCount), now); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, l.id)
		return err
	})
	if err != nil {
		return db.CloudMessage{}, db.WrapUnlessNotFound(fmt.Sprintf("%s cloud message of %q", settlement, deviceID), err)
	}
	return m, nil
}

// ReleaseCloudMessage gives back a message locked under lockToken that
// never reached the device, without counting the delivery
// (db.ReleasedState has the rules).
func (s *Store) ReleaseCloudMessage(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error) {
	now := ms(s.Now())
	var m db.CloudMessage
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		l, err := lockedCloudMessage(ctx, tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		count := l.count - 1
		if _, err := tx.Exec(ctx, `UPDATE cloud_messages SET delivery_count = $1 WHERE id = $2`, count, l.id); err != nil {
			return err
		}
		if err := setCloudState(ctx, tx, l.id, db.ReleasedState(now, l.expires, count, l.maxCount), now); err != nil {
			return err
		}
		m, err = cloudMessageTx(ctx, tx, l.id)
		return err
	})
	if err != nil {
		return db.CloudMessage{}, db.WrapUnlessNotFound(fmt.Sprintf("release cloud message of %q", deviceID), err)
	}
	return m, nil
}

// applyDeadlines expires waiting messages whose time to live passed and
// takes back messages whose lock expired; dev 0 means every device. Rows
// another transaction holds are skipped: that one is settling or sweeping
// them. It returns the messages it changed.
func applyDeadlines(ctx context.Context, tx pgx.Tx, now, dev int64) ([]db.CloudMessage, error) {
	q := `SELECT ` + db.CloudColumns + db.CloudFrom + `
		WHERE ((m.state IN ('queued', 'abandoned') AND m.expires_at <= $1) OR (m.state = 'locked' AND m.lock_expires_at <= $1))`
	args := []any{now}
	if dev != 0 {
		q += ` AND m.device_id = $2`
		args = append(args, dev)
	}
	due, err := cloudMessages(ctx, tx, q+` ORDER BY m.id FOR UPDATE OF m SKIP LOCKED`, args...)
	if err != nil {
		return nil, err
	}
	for i, m := range due {
		if err := setCloudState(ctx, tx, m.ID, db.ExpiredState(m, now), now); err != nil {
			return nil, err
		}
		if due[i], err = cloudMessageTx(ctx, tx, m.ID); err != nil {
			return nil, err
		}
	}
	return due, nil
}

// ApplyCloudMessageDeadlines applies every passed deadline of every device
// and returns the messages it changed. The sweeper calls it.
func (s *Store) ApplyCloudMessageDeadlines(ctx context.Context) ([]db.CloudMessage, error) {
	now := ms(s.Now())
	var changed []db.CloudMessage
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Instances take turns (see deleteOnce); the next finds nothing due.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockDeadlines)); err != nil {
			return err
		}
		var err error
		changed, err = applyDeadlines(ctx, tx, now, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply cloud message deadlines: %w", err)
	}
	return changed, nil
}

// NextCloudMessageDeadline is the earliest pending expiry or lock expiry,
// or the zero time when no message is waiting or locked.
func (s *Store) NextCloudMessageDeadline(ctx context.Context) (time.Time, error) {
	var next *int64
	err := s.pool.QueryRow(ctx, `SELECT LEAST(
		(SELECT MIN(expires_at) FROM cloud_messages WHERE state IN ('queued', 'abandoned')),
		(SELECT MIN(lock_expires_at) FROM cloud_messages WHERE state = 'locked'))`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next cloud message deadline: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return storage.FromUnixMS(*next), nil
}

// PurgeCloudMessages ends every waiting or locked message of a device as
// purged and returns them.
func (s *Store) PurgeCloudMessages(ctx context.Context, deviceID string) ([]db.CloudMessage, error) {
	now := ms(s.Now())
	var purged []db.CloudMessage
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		dev, err := lockDevice(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		live, err := cloudMessages(ctx, tx, `SELECT `+db.CloudColumns+db.CloudFrom+`
			WHERE m.device_id = $1 AND m.state IN ('queued', 'abandoned', 'locked') ORDER BY m.id FOR UPDATE OF m`, dev)
		if err != nil {
			return err
		}
		for _, m := range live {
			if err := setCloudState(ctx, tx, m.ID, db.CloudPurged, now); err != nil {
				return err
			}
			if m, err = cloudMessageTx(ctx, tx, m.ID); err != nil {
				return err
			}
			purged = append(purged, m)
		}
		return nil
	})
	if err != nil {
		return nil, db.WrapUnlessNotFound(fmt.Sprintf("purge cloud messages of %q", deviceID), err)
	}
	return purged, nil
}

// CloudMessages is a device's message history, newest first.
func (s *Store) CloudMessages(ctx context.Context, deviceID string, limit int) ([]db.CloudMessage, error) {
	if _, err := s.Device(ctx, deviceID); err != nil {
		return nil, err
	}
	out, err := cloudMessages(ctx, s.pool, `SELECT `+db.CloudColumns+db.CloudFrom+`
		WHERE d.device_id = $1 ORDER BY m.id DESC LIMIT $2`, deviceID, db.CloudHistoryLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list cloud messages of %q: %w", deviceID, err)
	}
	return out, nil
}

// CloudMessageCounts counts cloud-to-device messages by state.
func (s *Store) CloudMessageCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	r, err := s.pool.Query(ctx, `SELECT state, count(*) FROM cloud_messages GROUP BY state`)
	_, err = rows(r, err, func(r pgx.Rows) (struct{}, error) {
		var state string
		var n int
		err := r.Scan(&state, &n)
		out[state] = n
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("count cloud messages: %w", translate(err))
	}
	return out, nil
}

// PruneCloudMessages deletes messages that reached a final state before cutoff.
func (s *Store) PruneCloudMessages(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := s.deleteOnce(ctx, lockPruneCloud, `DELETE FROM cloud_messages WHERE settled_at IS NOT NULL AND settled_at < $1`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune cloud messages: %w", err)
	}
	return n, nil
}

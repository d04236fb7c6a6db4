package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"fieldhub/cluster"
	"fieldhub/db"
)

// The instances of a cluster on this database (package cluster): their
// leases in cluster_nodes, renewed by the database's clock so that the
// instances' clocks need not agree, and the taking back of a lost
// instance's connections.

var _ cluster.Store = (*Store)(nil)

// dbNow is the database's clock in Unix ms.
const dbNow = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

// JoinCluster takes this instance's lease, also back from "lost".
func (s *Store) JoinCluster(ctx context.Context, lease time.Duration) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO cluster_nodes (node, lease_until, joined_at) VALUES ($1, `+dbNow+` + $2, `+dbNow+`)
		ON CONFLICT (node) DO UPDATE SET lease_until = excluded.lease_until, joined_at = excluded.joined_at, lost_at = NULL`,
		s.Node, lease.Milliseconds())
	if err != nil {
		return fmt.Errorf("take the lease of node %q: %w", s.Node, err)
	}
	return nil
}

// RenewLease extends this instance's lease; cluster.ErrLeaseLost when
// another instance took it back.
func (s *Store) RenewLease(ctx context.Context, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE cluster_nodes SET lease_until = `+dbNow+` + $2 WHERE node = $1 AND lost_at IS NULL`,
		s.Node, lease.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew the lease of node %q: %w", s.Node, err)
	}
	if tag.RowsAffected() == 0 {
		return cluster.ErrLeaseLost
	}
	return nil
}

// LeaveCluster gives this instance's lease up.
func (s *Store) LeaveCluster(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM cluster_nodes WHERE node = $1 AND lost_at IS NULL`, s.Node); err != nil {
		return fmt.Errorf("give up the lease of node %q: %w", s.Node, err)
	}
	return nil
}

// LostNodes lists the other instances whose lease expired or that were
// taken back and not forgotten yet.
func (s *Store) LostNodes(ctx context.Context) ([]string, error) {
	r, err := s.pool.Query(ctx, `SELECT node FROM cluster_nodes WHERE node <> $1 AND (lost_at IS NOT NULL OR lease_until < `+dbNow+`)
		ORDER BY node`, s.Node)
	out, err := rows(r, err, func(r pgx.Rows) (string, error) {
		var n string
		return n, r.Scan(&n)
	})
	if err != nil {
		return nil, fmt.Errorf("list lost instances: %w", err)
	}
	return out, nil
}

// ReclaimNode takes back node's connections: of this instance's previous
// run (own), or of a lost instance, once. The lease row, locked and marked
// lost by the one transaction that finds it expired, makes it once.
func (s *Store) ReclaimNode(ctx context.Context, node string, own bool) (cluster.Reclaimed, bool, error) {
	r := cluster.Reclaimed{Node: node}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if !own {
			var n string
			err := tx.QueryRow(ctx, `UPDATE cluster_nodes SET lost_at = `+dbNow+`
				WHERE node = $1 AND lost_at IS NULL AND lease_until < `+dbNow+` RETURNING node`, node).Scan(&n)
			if err == pgx.ErrNoRows {
				return errNotLost
			}
			if err != nil {
				return err
			}
		}
		dr, err := tx.Query(ctx, `UPDATE devices SET connected = 0, connected_node = NULL, disconnected_at = last_activity_at
			WHERE connected = 1 AND connected_node = $1 RETURNING device_id`, node)
		if r.Devices, err = rows(dr, err, func(r pgx.Rows) (string, error) {
			var id string
			return id, r.Scan(&id)
		}); err != nil {
			return fmt.Errorf("disconnect its devices: %w", err)
		}
		// In flight on its connections: abandoned, as when a connection
		// ends before the device's PUBACK (the delivery counts).
		locked, err := cloudMessages(ctx, tx, `SELECT `+db.CloudColumns+db.CloudFrom+`
			WHERE m.state = 'locked' AND m.locked_node = $1 ORDER BY m.id FOR UPDATE OF m`, node)
		if err != nil {
			return fmt.Errorf("find its cloud-to-device messages in flight: %w", err)
		}
		now := ms(s.Now())
		for _, m := range locked {
			state := db.SettledState(db.SettleAbandon, now, ms(m.ExpiresAt), m.DeliveryCount, m.MaxDeliveryCount)
			if err := setCloudState(ctx, tx, m.ID, state, now); err != nil {
				return err
			}
			if m, err = cloudMessageTx(ctx, tx, m.ID); err != nil {
				return err
			}
			r.CloudMessages = append(r.CloudMessages, m)
		}
		return nil
	})
	if err == errNotLost {
		return cluster.Reclaimed{Node: node}, false, nil
	}
	if err != nil {
		return cluster.Reclaimed{Node: node}, false, fmt.Errorf("take back the connections of node %q: %w", node, err)
	}
	return r, true, nil
}

// errNotLost ends ReclaimNode's transaction when the node is not (or no
// longer) to take back.
var errNotLost = fmt.Errorf("not lost")

// ForgetNode deletes a lost instance's lease (its telemetry is folded).
func (s *Store) ForgetNode(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM cluster_nodes WHERE node = $1 AND lost_at IS NOT NULL`, node); err != nil {
		return fmt.Errorf("forget lost node %q: %w", node, err)
	}
	return nil
}

// UnleasedTelemetryNodes lists the telemetry nodes other than this
// instance's with no live lease.
func (s *Store) UnleasedTelemetryNodes(ctx context.Context) ([]string, error) {
	r, err := s.pool.Query(ctx, `SELECT t.node FROM telemetry_nodes t WHERE t.node <> $1
		AND NOT EXISTS (SELECT 1 FROM cluster_nodes c WHERE c.node = t.node AND c.lost_at IS NULL) ORDER BY t.node`, s.Node)
	out, err := rows(r, err, func(r pgx.Rows) (string, error) {
		var n string
		return n, r.Scan(&n)
	})
	if err != nil {
		return nil, fmt.Errorf("list stopped telemetry nodes: %w", err)
	}
	return out, nil
}

// Work done once per cluster. Each kind has an advisory lock that its
// transaction takes: one instance does it at a time and the others, finding
// the lock taken, leave it to that one (pruning), or wait and find nothing
// left (deadlines), never doing it twice. Keys are "fh" and a letter pair.
const (
	lockDeadlines  = 0x6668646c // "fhdl": cloud-to-device deadlines
	lockPruneCloud = 0x66687063 // "fhpc": settled cloud-to-device messages
	lockPruneAudit = 0x66687061 // "fhpa": the audit log
	lockSessions   = 0x66687073 // "fhps": expired sessions
	lockAlerts     = 0x6668616c // "fhal": cleared alerts
	lockDeliveries = 0x66687064 // "fhpd": finished webhook deliveries
)

// deleteOnce runs a DELETE in a transaction holding lock, unless another
// instance holds it: then it deletes nothing.
func (s *Store) deleteOnce(ctx context.Context, lock int64, sql string, args ...any) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lock).Scan(&ok); err != nil || !ok {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, translate(err)
}

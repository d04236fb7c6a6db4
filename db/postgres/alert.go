package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/storage"
)

// The alerting tables (migration 0008), with the rules of package db
// (db.RuleColumns, db.NewWebhook.Validate, db.CutAlertText) and its row
// scanners, as alerting.Store and alerting.WebhookStore ask.

// numbered turns ? placeholders into $1, $2, … from first on.
func numbered(q string, first int) string {
	var b strings.Builder
	n := first
	for _, c := range q {
		if c == '?' {
			b.WriteString("$" + strconv.Itoa(n))
			n++
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// lockTable serialises the count-then-insert of a bounded table.
func lockTable(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "fieldhub."+name)
	return err
}

func (s *Store) AlertRules(ctx context.Context) ([]alert.Rule, error) {
	r, err := s.pool.Query(ctx, `SELECT `+db.AlertRuleColumns+` FROM alert_rules ORDER BY id`)
	out, err := rows(r, err, func(r pgx.Rows) (alert.Rule, error) { return db.ScanRule(r) })
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", translate(err))
	}
	return out, nil
}

func (s *Store) AlertRule(ctx context.Context, id int64) (alert.Rule, error) {
	r, err := db.ScanRule(s.pool.QueryRow(ctx, `SELECT `+db.AlertRuleColumns+` FROM alert_rules WHERE id = $1`, id))
	if err != nil {
		return alert.Rule{}, fmt.Errorf("alert rule %d: %w", id, translate(err))
	}
	return r, nil
}

func (s *Store) CreateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error) {
	r.ID = 0
	scope, cond, err := db.RuleColumns(r)
	if err != nil {
		return alert.Rule{}, err
	}
	now := ms(s.Now())
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTable(ctx, tx, "alert_rules"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM alert_rules`).Scan(&n); err != nil {
			return err
		}
		if n >= db.MaxAlertRules {
			return storage.Invalid("rules", "there are %d alert rules already; at most %d are allowed", n, db.MaxAlertRules)
		}
		return tx.QueryRow(ctx, `INSERT INTO alert_rules (name, severity, enabled, scope, condition, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`, r.Name, string(r.Severity), r.Enabled, scope, cond, now).Scan(&r.ID)
	})
	if err != nil {
		return alert.Rule{}, fmt.Errorf("create alert rule: %w", translate(err))
	}
	return r, nil
}

func (s *Store) UpdateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error) {
	scope, cond, err := db.RuleColumns(r)
	if err != nil {
		return alert.Rule{}, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE alert_rules SET name = $1, severity = $2, enabled = $3, scope = $4, condition = $5, updated_at = $6
		WHERE id = $7`, r.Name, string(r.Severity), r.Enabled, scope, cond, ms(s.Now()), r.ID)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return alert.Rule{}, fmt.Errorf("update alert rule %d: %w", r.ID, translate(err))
	}
	return r, nil
}

func (s *Store) DeleteAlertRule(ctx context.Context, id int64) error {
	return s.deleteByID(ctx, "alert_rules", "alert rule", id)
}

func (s *Store) deleteByID(ctx context.Context, table, what string, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete %s %d: %w", what, id, translate(err))
	}
	return nil
}

func (s *Store) Alerts(ctx context.Context, f db.AlertFilter) ([]alert.Alert, error) {
	where, args, limit := f.Where()
	q := numbered(`SELECT `+db.AlertColumns+` FROM alerts`+where+` ORDER BY id DESC LIMIT ?`, 1)
	r, err := s.pool.Query(ctx, q, append(args, limit)...)
	out, err := rows(r, err, func(r pgx.Rows) (alert.Alert, error) { return db.ScanAlert(r) })
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", translate(err))
	}
	if out == nil {
		out = []alert.Alert{}
	}
	return out, nil
}

func (s *Store) Alert(ctx context.Context, id int64) (alert.Alert, error) {
	a, err := db.ScanAlert(s.pool.QueryRow(ctx, `SELECT `+db.AlertColumns+` FROM alerts WHERE id = $1`, id))
	if err != nil {
		return alert.Alert{}, fmt.Errorf("alert %d: %w", id, translate(err))
	}
	return a, nil
}

func (s *Store) OpenAlertCounts(ctx context.Context) (map[alert.Severity]int, error) {
	out := map[alert.Severity]int{}
	r, err := s.pool.Query(ctx, `SELECT severity, count(*) FROM alerts WHERE state <> 'cleared' GROUP BY severity`)
	_, err = rows(r, err, func(r pgx.Rows) (struct{}, error) {
		var sev string
		var n int
		err := r.Scan(&sev, &n)
		out[alert.Severity(sev)] = n
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("count open alerts: %w", translate(err))
	}
	return out, nil
}

func (s *Store) InsertAlert(ctx context.Context, a alert.Alert) (alert.Alert, error) {
	if a.State == alert.StateCleared {
		return alert.Alert{}, storage.Invalid("state", "a new alert is open, not cleared")
	}
	saved, errs, err := s.SaveAlerts(ctx, []alert.Alert{a})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return alert.Alert{}, fmt.Errorf("insert alert of rule %d on %q: %w", a.RuleID, a.DeviceID, err)
	}
	return saved[0], nil
}

func (s *Store) UpdateAlert(ctx context.Context, a alert.Alert) error {
	if a.ID == 0 {
		return storage.Invalid("id", "an alert to update needs its id")
	}
	_, errs, err := s.SaveAlerts(ctx, []alert.Alert{a})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	return nil
}

// SaveAlerts is db.DB.SaveAlerts: one transaction, conflicts found by
// reading first (a failing statement would abort the transaction).
func (s *Store) SaveAlerts(ctx context.Context, batch []alert.Alert) ([]alert.Alert, []error, error) {
	saved, errs := make([]alert.Alert, len(batch)), make([]error, len(batch))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for i, a := range batch {
			a = db.CutAlertText(a)
			value, err := db.AlertValue(a.Value)
			if err != nil {
				errs[i] = err
				continue
			}
			if a.ID == 0 {
				// Two writers inserting the same (rule, device) wait for each other.
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(a.RuleID), a.DeviceID); err != nil {
					return err
				}
				var open int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE rule_id = $1 AND device_id = $2 AND state <> 'cleared'`, a.RuleID, a.DeviceID).Scan(&open); err != nil {
					return err
				}
				if open > 0 && a.State != alert.StateCleared {
					errs[i] = fmt.Errorf("alert of rule %d on %q: %w", a.RuleID, a.DeviceID, storage.ErrConflict)
					continue
				}
				if err := tx.QueryRow(ctx, `INSERT INTO alerts (rule_id, device_id, severity, state, count, first_at, last_at, value,
					acknowledged_at, acknowledged_by, ack_comment, cleared_at, cleared_by, clear_comment, clear_reason)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
					a.RuleID, a.DeviceID, string(a.Severity), string(a.State), a.Count, ms(a.FirstAt), ms(a.LastAt), value,
					optionalMS(a.AcknowledgedAt), a.AcknowledgedBy, a.AckComment, optionalMS(a.ClearedAt), a.ClearedBy, a.ClearComment,
					string(a.ClearReason)).Scan(&a.ID); err != nil {
					return err
				}
				saved[i] = a
				continue
			}
			var state string
			switch err := tx.QueryRow(ctx, `SELECT state FROM alerts WHERE id = $1 FOR UPDATE`, a.ID).Scan(&state); {
			case errors.Is(err, pgx.ErrNoRows):
				errs[i] = fmt.Errorf("alert %d: %w", a.ID, storage.ErrNotFound)
				continue
			case err != nil:
				return err
			case state == string(alert.StateCleared):
				errs[i] = fmt.Errorf("alert %d: %w: %w", a.ID, storage.ErrConflict, alert.ErrCleared)
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE alerts SET severity = $1, state = $2, count = $3, first_at = $4, last_at = $5, value = $6,
				acknowledged_at = $7, acknowledged_by = $8, ack_comment = $9, cleared_at = $10, cleared_by = $11, clear_comment = $12,
				clear_reason = $13 WHERE id = $14`, string(a.Severity), string(a.State), a.Count, ms(a.FirstAt), ms(a.LastAt), value,
				optionalMS(a.AcknowledgedAt), a.AcknowledgedBy, a.AckComment, optionalMS(a.ClearedAt), a.ClearedBy, a.ClearComment,
				string(a.ClearReason), a.ID); err != nil {
				return err
			}
			saved[i] = a
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("save alerts: %w", translate(err))
	}
	return saved, errs, nil
}

func (s *Store) PruneAlerts(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n, err := s.deleteOnce(ctx, lockAlerts, `DELETE FROM alerts WHERE id IN
		(SELECT id FROM alerts WHERE cleared_at IS NOT NULL AND cleared_at < $1 LIMIT $2)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune alerts: %w", err)
	}
	return int(n), nil
}

func optionalMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ms(t)
}

func (s *Store) CreateWebhook(ctx context.Context, n db.NewWebhook) (db.Webhook, error) {
	if err := n.Validate(); err != nil {
		return db.Webhook{}, err
	}
	now := s.Now()
	w := db.Webhook{URL: n.URL, Secret: n.Secret, Events: n.Events, Format: n.Format, Enabled: true,
		CreatedAt: storage.FromUnixMS(ms(now)), UpdatedAt: storage.FromUnixMS(ms(now))}
	events := make([]string, len(n.Events))
	for i, e := range n.Events {
		events[i] = `"` + string(e) + `"` // valid event names need no escaping
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTable(ctx, tx, "webhooks"); err != nil {
			return err
		}
		var count int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhooks`).Scan(&count); err != nil {
			return err
		}
		if count >= db.MaxWebhooks {
			return storage.Invalid("webhooks", "there are %d webhooks already; at most %d are allowed", count, db.MaxWebhooks)
		}
		return tx.QueryRow(ctx, `INSERT INTO webhooks (url, secret, events, format, enabled, created_at, updated_at)
			VALUES ($1, $2, $3, $4, TRUE, $5, $5) RETURNING id`, n.URL, n.Secret, "["+strings.Join(events, ",")+"]", n.Format, ms(now)).Scan(&w.ID)
	})
	if err != nil {
		return db.Webhook{}, fmt.Errorf("create webhook: %w", translate(err))
	}
	return w, nil
}

func (s *Store) Webhooks(ctx context.Context) ([]db.Webhook, error) {
	r, err := s.pool.Query(ctx, `SELECT `+db.WebhookColumns+` FROM webhooks ORDER BY id`)
	out, err := rows(r, err, func(r pgx.Rows) (db.Webhook, error) { return db.ScanWebhook(r) })
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", translate(err))
	}
	if out == nil {
		out = []db.Webhook{}
	}
	return out, nil
}

func (s *Store) Webhook(ctx context.Context, id int64) (db.Webhook, error) {
	w, err := db.ScanWebhook(s.pool.QueryRow(ctx, `SELECT `+db.WebhookColumns+` FROM webhooks WHERE id = $1`, id))
	if err != nil {
		return db.Webhook{}, fmt.Errorf("webhook %d: %w", id, translate(err))
	}
	return w, nil
}

func (s *Store) SetWebhookEnabled(ctx context.Context, id int64, enabled bool, reason string) (db.Webhook, error) {
	now := ms(s.Now())
	if enabled {
		reason = ""
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET enabled = $1, disabled_reason = $2,
			failing_since = CASE WHEN $1 THEN NULL ELSE failing_since END, updated_at = $3 WHERE id = $4`,
			enabled, db.CutDetail(reason), now, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if !enabled {
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook was disabled', updated_at = $1
				WHERE webhook_id = $2 AND state = 'pending'`, now, id)
		}
		return err
	})
	if err != nil {
		return db.Webhook{}, fmt.Errorf("set webhook %d enabled: %w", id, translate(err))
	}
	return s.Webhook(ctx, id)
}

func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	return s.deleteByID(ctx, "webhooks", "webhook", id)
}

func (s *Store) QueueDelivery(ctx context.Context, dl db.Delivery) (db.Delivery, error) {
	now := ms(s.Now())
	dl.State, dl.Attempts = db.DeliveryPending, 0
	dl.NextAt, dl.CreatedAt, dl.UpdatedAt = storage.FromUnixMS(now), storage.FromUnixMS(now), storage.FromUnixMS(now)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fieldhub.outbox'), $1)`, int32(dl.WebhookID)); err != nil {
			return err
		}
		var pending int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'`, dl.WebhookID).Scan(&pending); err != nil {
			return err
		}
		if pending >= db.MaxPendingDeliveries {
			dl.State, dl.LastError = db.DeliveryDropped, fmt.Sprintf("the outbox of this webhook holds %d deliveries already", pending)
		}
		return tx.QueryRow(ctx, `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, alert_id, payload, state, next_at, last_error, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7) RETURNING id`, dl.WebhookID, dl.EventID, string(dl.EventType), dl.AlertID,
			string(dl.Payload), dl.State, now, dl.LastError).Scan(&dl.ID)
	})
	if err != nil {
		return db.Delivery{}, fmt.Errorf("queue delivery to webhook %d: %w", dl.WebhookID, translate(err))
	}
	return dl, nil
}

func (s *Store) deliveries(ctx context.Context, q string, args ...any) ([]db.Delivery, error) {
	r, err := s.pool.Query(ctx, q, args...)
	out, err := rows(r, err, func(r pgx.Rows) (db.Delivery, error) { return db.ScanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", translate(err))
	}
	if out == nil {
		out = []db.Delivery{}
	}
	return out, nil
}

// ClaimDeliveries claims a hook's due deliveries (db.Claim). Instances
// claiming one hook's deliveries at once take turns under an advisory lock,
// so that each statement sees the claims committed before it: two cannot
// both find the hook unclaimed and claim the same deliveries.
func (s *Store) ClaimDeliveries(ctx context.Context, webhookID int64, c db.Claim, limit int) ([]db.Delivery, error) {
	var out []db.Delivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fieldhub.claims'), $1)`, int32(webhookID)); err != nil {
			return err
		}
		r, err := tx.Query(ctx, `UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2
			WHERE id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $3 AND state = 'pending' AND next_at <= $4 ORDER BY id LIMIT $5)
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook_id = $3 AND state = 'pending' AND claimed_by <> $1 AND claimed_until > $4)
			RETURNING `+db.DeliveryColumns, c.By, ms(c.Until), webhookID, ms(c.Now), limit)
		out, err = rows(r, err, func(r pgx.Rows) (db.Delivery, error) { return db.ScanDelivery(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of webhook %d: %w", webhookID, translate(err))
	}
	if out == nil {
		out = []db.Delivery{}
	}
	slices.SortFunc(out, func(a, b db.Delivery) int { return cmp.Compare(a.ID, b.ID) }) // RETURNING has no order
	return out, nil
}

func (s *Store) ReleaseDeliveries(ctx context.Context, webhookID int64, by string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
		WHERE webhook_id = $1 AND claimed_by = $2`, webhookID, by); err != nil {
		return fmt.Errorf("release deliveries of webhook %d: %w", webhookID, translate(err))
	}
	return nil
}

func (s *Store) NextDeliveryAt(ctx context.Context) (time.Time, bool, error) {
	var next *int64
	err := s.pool.QueryRow(ctx, `SELECT min(GREATEST(d.next_at, d.claimed_until)) FROM webhook_deliveries d
		JOIN webhooks w ON w.id = d.webhook_id WHERE d.state = 'pending' AND w.enabled`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next delivery: %w", translate(err))
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return storage.FromUnixMS(*next), true, nil
}

func (s *Store) WebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]db.Delivery, error) {
	if limit <= 0 || limit > db.MaxDeliveriesListed {
		limit = db.MaxDeliveriesListed
	}
	return s.deliveries(ctx, `SELECT `+db.DeliveryColumns+` FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2`, webhookID, limit)
}

func (s *Store) RecordAttempt(ctx context.Context, a db.Attempt) (db.Webhook, error) {
	var hookID int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var by *string
		if err := tx.QueryRow(ctx, `SELECT webhook_id, claimed_by FROM webhook_deliveries WHERE id = $1 FOR UPDATE`, a.DeliveryID).Scan(&hookID, &by); err != nil {
			return err
		}
		if by == nil || *by != a.By {
			return fmt.Errorf("%w: the delivery is not claimed by %q", storage.ErrConflict, a.By)
		}
		at := ms(a.At)
		state, next := db.DeliveryDelivered, at
		switch {
		case a.Err == "":
		case a.NextAt.IsZero():
			state = db.DeliveryFailed
		default:
			state, next = db.DeliveryPending, ms(a.NextAt)
		}
		failed := a.Err != ""
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_at = $2,
			first_failure_at = CASE WHEN $3 THEN coalesce(first_failure_at, $4) ELSE first_failure_at END,
			last_status = $5, last_error = $6, updated_at = $4, claimed_by = NULL, claimed_until = NULL WHERE id = $7`,
			state, next, failed, at, a.Status, db.CutDetail(a.Err), a.DeliveryID); err != nil {
			return err
		}
		q := `UPDATE webhooks SET failing_since = NULL WHERE id = $1`
		args := []any{hookID}
		if failed {
			q, args = `UPDATE webhooks SET failing_since = coalesce(failing_since, $2) WHERE id = $1`, []any{hookID, at}
		}
		_, err := tx.Exec(ctx, q, args...)
		return err
	})
	if err != nil {
		return db.Webhook{}, fmt.Errorf("record delivery attempt %d: %w", a.DeliveryID, translate(err))
	}
	return s.Webhook(ctx, hookID)
}

func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n, err := s.deleteOnce(ctx, lockDeliveries, `DELETE FROM webhook_deliveries WHERE id IN
		(SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < $1 LIMIT $2)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return int(n), nil
}

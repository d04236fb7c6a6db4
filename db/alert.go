package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"fieldhub/alert"
	"fieldhub/storage"
)

// MaxAlertRules is how many alert rules a hub keeps, enabled or not: what
// one evaluator holds (alert.MaxRules).
const MaxAlertRules = alert.MaxRules

// MaxAlertsListed bounds one page of the alerts list.
const MaxAlertsListed = 1000

// AlertRules lists every rule by id.
func (d *DB) AlertRules(ctx context.Context) ([]alert.Rule, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+AlertRuleColumns+` FROM alert_rules ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	defer rows.Close()
	var out []alert.Rule
	for rows.Next() {
		r, err := ScanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AlertRule reads one rule; an unknown id is storage.ErrNotFound.
func (d *DB) AlertRule(ctx context.Context, id int64) (alert.Rule, error) {
	r, err := ScanRule(d.read.QueryRowContext(ctx, `SELECT `+AlertRuleColumns+` FROM alert_rules WHERE id = ?`, id))
	if err != nil {
		return alert.Rule{}, fmt.Errorf("alert rule %d: %w", id, err)
	}
	return r, nil
}

// CreateAlertRule stores a new rule (its ID is assigned) after validating
// it; beyond MaxAlertRules it is refused.
func (d *DB) CreateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error) {
	r.ID = 0
	scope, cond, err := RuleColumns(r)
	if err != nil {
		return alert.Rule{}, err
	}
	now := ms(d.Now())
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alert_rules`).Scan(&n); err != nil {
			return err
		}
		if n >= MaxAlertRules {
			return invalid("rules", "there are %d alert rules already; at most %d are allowed", n, MaxAlertRules)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO alert_rules (name, severity, enabled, scope, condition, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, r.Name, string(r.Severity), r.Enabled, scope, cond, now, now)
		if err != nil {
			return err
		}
		r.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return alert.Rule{}, fmt.Errorf("create alert rule: %w", err)
	}
	return r, nil
}

// UpdateAlertRule replaces the rule with r.ID after validating it.
func (d *DB) UpdateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error) {
	scope, cond, err := RuleColumns(r)
	if err != nil {
		return alert.Rule{}, err
	}
	res, err := d.write.ExecContext(ctx, `UPDATE alert_rules SET name = ?, severity = ?, enabled = ?, scope = ?, condition = ?, updated_at = ?
		WHERE id = ?`, r.Name, string(r.Severity), r.Enabled, scope, cond, ms(d.Now()), r.ID)
	if err := rowsChanged(res, err); err != nil {
		return alert.Rule{}, fmt.Errorf("update alert rule %d: %w", r.ID, err)
	}
	return r, nil
}

// DeleteAlertRule deletes a rule; its alerts stay in the history.
func (d *DB) DeleteAlertRule(ctx context.Context, id int64) error {
	res, err := d.write.ExecContext(ctx, `DELETE FROM alert_rules WHERE id = ?`, id)
	if err := rowsChanged(res, err); err != nil {
		return fmt.Errorf("delete alert rule %d: %w", id, err)
	}
	return nil
}

// rowsChanged turns an update that touched nothing into ErrNotFound.
func rowsChanged(res sql.Result, err error) error {
	if err != nil {
		return translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// RuleColumns validates a rule and writes its scope and condition as the
// API's JSON, which the evaluator reads back strictly.
func RuleColumns(r alert.Rule) (scope, cond string, err error) {
	if err := r.Validate(); err != nil {
		return "", "", ruleInvalid(err)
	}
	s, err := json.Marshal(r.Scope)
	if err != nil {
		return "", "", err
	}
	c, err := json.Marshal(r.Condition)
	if err != nil {
		return "", "", err
	}
	return string(s), string(c), nil
}

// ruleInvalid turns the alert package's field errors into storage's, which
// every handler maps to 422.
func ruleInvalid(err error) error {
	var fe *alert.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, "%s", fe.Reason)
	}
	return err
}

// ScanRule reads a row of AlertRuleColumns.
func ScanRule(row interface{ Scan(...any) error }) (alert.Rule, error) {
	var (
		r           alert.Rule
		sev         string
		scope, cond string
	)
	if err := row.Scan(&r.ID, &r.Name, &sev, &r.Enabled, &scope, &cond); err != nil {
		return alert.Rule{}, translate(err)
	}
	r.Severity = alert.Severity(sev)
	if err := json.Unmarshal([]byte(scope), &r.Scope); err != nil {
		return alert.Rule{}, fmt.Errorf("alert rule %d: scope: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(cond), &r.Condition); err != nil {
		return alert.Rule{}, fmt.Errorf("alert rule %d: condition: %w", r.ID, err)
	}
	return r, nil
}

// AlertRuleColumns are the columns ScanRule reads.
const AlertRuleColumns = `id, name, severity, enabled, scope, condition`

// CutAlertText bounds what operators wrote on an alert, as every store
// keeps it.
func CutAlertText(a alert.Alert) alert.Alert {
	a.AckComment, a.ClearComment = cutRunes(a.AckComment, alert.MaxCommentLen), cutRunes(a.ClearComment, alert.MaxCommentLen)
	a.AcknowledgedBy, a.ClearedBy = cutAuditField(a.AcknowledgedBy, alert.MaxByLen), cutAuditField(a.ClearedBy, alert.MaxByLen)
	return a
}

// AlertFilter selects alerts; zero fields select everything. State "open"
// means active or acknowledged.
type AlertFilter struct {
	State    string // "", "open", or an alert.State
	Severity string
	DeviceID string
	RuleID   int64
	BeforeID int64 // paging: alerts with a smaller id (newest first)
	Limit    int   // default and most MaxAlertsListed
}

// AlertColumns are the columns ScanAlert reads.
const AlertColumns = `id, rule_id, device_id, severity, state, count, first_at, last_at, value,
	acknowledged_at, acknowledged_by, ack_comment, cleared_at, cleared_by, clear_comment, clear_reason`

// Where is the filter as SQL conditions with ? placeholders, its
// arguments, and its limit.
func (f AlertFilter) Where() (string, []any, int) {
	var conds []string
	var args []any
	switch f.State {
	case "":
	case "open":
		conds = append(conds, "state <> 'cleared'")
	default:
		conds, args = append(conds, "state = ?"), append(args, f.State)
	}
	if f.Severity != "" {
		conds, args = append(conds, "severity = ?"), append(args, f.Severity)
	}
	if f.DeviceID != "" {
		conds, args = append(conds, "device_id = ?"), append(args, f.DeviceID)
	}
	if f.RuleID != 0 {
		conds, args = append(conds, "rule_id = ?"), append(args, f.RuleID)
	}
	if f.BeforeID > 0 {
		conds, args = append(conds, "id < ?"), append(args, f.BeforeID)
	}
	if f.Limit <= 0 || f.Limit > MaxAlertsListed {
		f.Limit = MaxAlertsListed
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return where, args, f.Limit
}

// Alerts lists alerts newest first.
func (d *DB) Alerts(ctx context.Context, f AlertFilter) ([]alert.Alert, error) {
	where, args, limit := f.Where()
	rows, err := d.read.QueryContext(ctx, `SELECT `+AlertColumns+` FROM alerts`+where+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	out := []alert.Alert{}
	for rows.Next() {
		a, err := ScanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Alert reads one alert.
func (d *DB) Alert(ctx context.Context, id int64) (alert.Alert, error) {
	a, err := ScanAlert(d.read.QueryRowContext(ctx, `SELECT `+AlertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return alert.Alert{}, fmt.Errorf("alert %d: %w", id, err)
	}
	return a, nil
}

// OpenAlertCounts counts the open alerts by severity.
func (d *DB) OpenAlertCounts(ctx context.Context) (map[alert.Severity]int, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT severity, count(*) FROM alerts WHERE state <> 'cleared' GROUP BY severity`)
	if err != nil {
		return nil, fmt.Errorf("count open alerts: %w", err)
	}
	defer rows.Close()
	out := map[alert.Severity]int{}
	for rows.Next() {
		var sev string
		var n int
		if err := rows.Scan(&sev, &n); err != nil {
			return nil, err
		}
		out[alert.Severity(sev)] = n
	}
	return out, rows.Err()
}

// InsertAlert stores a new open alert and returns it with its id. A second
// open alert for the same (rule, device) is storage.ErrConflict.
func (d *DB) InsertAlert(ctx context.Context, a alert.Alert) (alert.Alert, error) {
	if a.State == alert.StateCleared {
		return alert.Alert{}, invalid("state", "a new alert is open, not cleared")
	}
	value, err := AlertValue(a.Value)
	if err != nil {
		return alert.Alert{}, err
	}
	res, err := d.write.ExecContext(ctx, `INSERT INTO alerts (rule_id, device_id, severity, state, count, first_at, last_at, value)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.RuleID, a.DeviceID, string(a.Severity), string(a.State), a.Count, ms(a.FirstAt), ms(a.LastAt), value)
	if err != nil {
		return alert.Alert{}, fmt.Errorf("insert alert of rule %d on %q: %w", a.RuleID, a.DeviceID, translate(err))
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return alert.Alert{}, err
	}
	return a, nil
}

// UpdateAlert writes an alert's changeable fields (count, times, value,
// state, acknowledgement, clear). A cleared alert is final: writing it again
// is storage.ErrConflict, so that a clear and an acknowledgement racing
// each other cannot undo the clear.
func (d *DB) UpdateAlert(ctx context.Context, a alert.Alert) error {
	value, err := AlertValue(a.Value)
	if err != nil {
		return err
	}
	a = CutAlertText(a)
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM alerts WHERE id = ?`, a.ID).Scan(&state); err != nil {
			return translate(err)
		}
		if state == string(alert.StateCleared) {
			return fmt.Errorf("%w: %w", storage.ErrConflict, alert.ErrCleared)
		}
		_, err := tx.ExecContext(ctx, `UPDATE alerts SET severity = ?, state = ?, count = ?, first_at = ?, last_at = ?, value = ?,
			acknowledged_at = ?, acknowledged_by = ?, ack_comment = ?, cleared_at = ?, cleared_by = ?, clear_comment = ?, clear_reason = ?
			WHERE id = ?`, string(a.Severity), string(a.State), a.Count, ms(a.FirstAt), ms(a.LastAt), value,
			optionalMS(a.AcknowledgedAt), a.AcknowledgedBy, a.AckComment, optionalMS(a.ClearedAt), a.ClearedBy, a.ClearComment, string(a.ClearReason), a.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	return nil
}

// SaveAlerts stores a batch of alert changes in one transaction, so that a
// storm of transitions costs one commit, not one per alert: an alert
// without an ID is inserted (open or, when it rose and cleared within the
// batch, already cleared), one with an ID updated. Item i's outcome is
// errs[i]: storage.ErrConflict for a second open alert of the same (rule,
// device) or an update of a cleared alert; the others are stored. saved
// has the IDs of the inserted alerts.
func (d *DB) SaveAlerts(ctx context.Context, batch []alert.Alert) (saved []alert.Alert, errs []error, err error) {
	saved, errs = make([]alert.Alert, len(batch)), make([]error, len(batch))
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		for i, a := range batch {
			a = CutAlertText(a)
			value, err := AlertValue(a.Value)
			if err != nil {
				errs[i] = err
				continue
			}
			// Conflicts are found by reading first, never by a failing
			// statement, which would abort the transaction on some databases.
			if a.ID == 0 {
				var open int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alerts WHERE rule_id = ? AND device_id = ? AND state <> 'cleared'`, a.RuleID, a.DeviceID).Scan(&open); err != nil {
					return err
				}
				if open > 0 && a.State != alert.StateCleared {
					errs[i] = fmt.Errorf("alert of rule %d on %q: %w", a.RuleID, a.DeviceID, storage.ErrConflict)
					continue
				}
				res, err := tx.ExecContext(ctx, `INSERT INTO alerts (rule_id, device_id, severity, state, count, first_at, last_at, value,
					acknowledged_at, acknowledged_by, ack_comment, cleared_at, cleared_by, clear_comment, clear_reason)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.RuleID, a.DeviceID, string(a.Severity), string(a.State), a.Count,
					ms(a.FirstAt), ms(a.LastAt), value, optionalMS(a.AcknowledgedAt), a.AcknowledgedBy, a.AckComment,
					optionalMS(a.ClearedAt), a.ClearedBy, a.ClearComment, string(a.ClearReason))
				if err != nil {
					return err
				}
				if a.ID, err = res.LastInsertId(); err != nil {
					return err
				}
				saved[i] = a
				continue
			}
			var state string
			switch err := tx.QueryRowContext(ctx, `SELECT state FROM alerts WHERE id = ?`, a.ID).Scan(&state); {
			case errors.Is(err, sql.ErrNoRows):
				errs[i] = fmt.Errorf("alert %d: %w", a.ID, storage.ErrNotFound)
				continue
			case err != nil:
				return err
			case state == string(alert.StateCleared):
				errs[i] = fmt.Errorf("alert %d: %w: %w", a.ID, storage.ErrConflict, alert.ErrCleared)
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE alerts SET severity = ?, state = ?, count = ?, first_at = ?, last_at = ?, value = ?,
				acknowledged_at = ?, acknowledged_by = ?, ack_comment = ?, cleared_at = ?, cleared_by = ?, clear_comment = ?, clear_reason = ?
				WHERE id = ?`, string(a.Severity), string(a.State), a.Count, ms(a.FirstAt), ms(a.LastAt), value,
				optionalMS(a.AcknowledgedAt), a.AcknowledgedBy, a.AckComment, optionalMS(a.ClearedAt), a.ClearedBy, a.ClearComment, string(a.ClearReason), a.ID); err != nil {
				return err
			}
			saved[i] = a
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("save alerts: %w", err)
	}
	return saved, errs, nil
}

// PruneAlerts deletes at most limit alerts cleared before cutoff (the
// history's retention); open alerts are never pruned.
func (d *DB) PruneAlerts(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM alerts WHERE id IN
		(SELECT id FROM alerts WHERE cleared_at IS NOT NULL AND cleared_at < ? LIMIT ?)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune alerts: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// cutRunes bounds a comment to n characters; line breaks stay.
func cutRunes(s string, n int) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func optionalMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ms(t)
}

// maxAlertValue bounds the JSON of an alert's value (a reported property
// can be a whole object).
const maxAlertValue = 4 << 10

// AlertValue is an alert's value as stored: JSON, bounded.
func AlertValue(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", invalid("value", "is not JSON: %v", err)
	}
	if len(b) > maxAlertValue {
		// Kept as a string cut short: the alert matters, not the whole document.
		b, _ = json.Marshal(cutAuditField(string(b), maxAlertValue/4))
	}
	return string(b), nil
}

// ScanAlert reads a row of AlertColumns.
func ScanAlert(row interface{ Scan(...any) error }) (alert.Alert, error) {
	var (
		a                      alert.Alert
		sev, state, value, why string
		first, last            int64
		ackAt, clearedAt       sql.NullInt64
	)
	err := row.Scan(&a.ID, &a.RuleID, &a.DeviceID, &sev, &state, &a.Count, &first, &last, &value,
		&ackAt, &a.AcknowledgedBy, &a.AckComment, &clearedAt, &a.ClearedBy, &a.ClearComment, &why)
	if err != nil {
		return alert.Alert{}, translate(err)
	}
	a.Severity, a.State, a.ClearReason = alert.Severity(sev), alert.State(state), alert.Reason(why)
	a.FirstAt, a.LastAt, a.AcknowledgedAt, a.ClearedAt = fromMS(first), fromMS(last), nullMS(ackAt), nullMS(clearedAt)
	if err := json.Unmarshal([]byte(value), &a.Value); err != nil {
		a.Value = nil
	}
	return a, nil
}

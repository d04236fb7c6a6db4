package db

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditEntry records who did what to what, and how it ended.
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string
	Action  string
	Target  string
	Outcome string
	Detail  string
}

// RecordAudit appends an entry; At defaults to now and Outcome to "ok".
func (d *DB) RecordAudit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = d.Now()
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	_, err := d.write.ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		ms(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("record audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Actor    string
	Action   string // prefix, e.g. "device."
	Target   string
	BeforeID int64 // 0 = newest
	Limit    int
}

// AuditEntries lists entries matching f.
func (d *DB) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var conds []string
	var args []any
	if f.Actor != "" {
		conds = append(conds, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		conds = append(conds, "action LIKE ? ESCAPE '\\'")
		args = append(args, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Action)+"%")
	}
	if f.Target != "" {
		conds = append(conds, "target = ?")
		args = append(args, f.Target)
	}
	if f.BeforeID > 0 {
		conds = append(conds, "id < ?")
		args = append(args, f.BeforeID)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT id, at, actor, action, target, outcome, detail FROM audit_log`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit)
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

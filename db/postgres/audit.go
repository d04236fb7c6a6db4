package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// RecordAudit appends an entry; At defaults to now and Outcome to "ok".
func (s *Store) RecordAudit(ctx context.Context, e db.AuditEntry) error {
	e = e.Prepare(s.Now())
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		ms(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("record audit %s: %w", e.Action, translate(err))
	}
	return nil
}

// AuditEntries lists entries matching f, newest first.
func (s *Store) AuditEntries(ctx context.Context, f db.AuditFilter) ([]db.AuditEntry, error) {
	var conds []string
	var args []any
	cond := func(c string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(c, len(args)))
	}
	if f.Actor != "" {
		cond("actor = $%d", f.Actor)
	}
	if f.Action != "" {
		cond(`action ILIKE $%d ESCAPE '\'`, db.EscapeLike(f.Action)+"%")
	}
	if f.Target != "" {
		cond("target = $%d", f.Target)
	}
	if f.BeforeID > 0 {
		cond("id < $%d", f.BeforeID)
	}
	q := `SELECT id, at, actor, action, target, outcome, detail FROM audit_log`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.PageSize())
	r, err := s.pool.Query(ctx, q, args...)
	out, err := rows(r, err, func(r pgx.Rows) (db.AuditEntry, error) {
		var e db.AuditEntry
		var at int64
		err := r.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail)
		e.At = storage.FromUnixMS(at)
		return e.Cut(), err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// PruneAudit deletes up to limit entries older than cutoff, oldest first,
// and says how many it deleted.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return tag.RowsAffected(), nil
}

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
	p, err := s.ListAudit(ctx, f)
	return p.Entries, err
}

// ListAudit reads one page of entries matching f, newest first; a full
// page says where the next starts. (No scan window: db.AuditScanWindow is
// SQLite's bound on a substring filter's cost.)
func (s *Store) ListAudit(ctx context.Context, f db.AuditFilter) (db.AuditPage, error) {
	var conds []string
	var args []any
	cond := func(c string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(c, len(args)))
	}
	if f.Actor != "" {
		cond("actor = $%d", f.Actor)
	}
	if f.ActorContains != "" {
		cond(`actor ILIKE $%d ESCAPE '\'`, "%"+db.EscapeLike(f.ActorContains)+"%")
	}
	if f.Action != "" {
		cond(`action ILIKE $%d ESCAPE '\'`, db.EscapeLike(f.Action)+"%")
	}
	if f.Target != "" {
		cond("target = $%d", f.Target)
	}
	if f.TargetContains != "" {
		cond(`target ILIKE $%d ESCAPE '\'`, "%"+db.EscapeLike(f.TargetContains)+"%")
	}
	if f.BeforeID > 0 {
		cond("id < $%d", f.BeforeID)
	}
	q := `SELECT id, at, actor, action, target, outcome, detail FROM audit_log`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	limit := f.PageSize()
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
	r, err := s.pool.Query(ctx, q, args...)
	out, err := rows(r, err, func(r pgx.Rows) (db.AuditEntry, error) {
		var e db.AuditEntry
		var at int64
		err := r.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail)
		e.At = storage.FromUnixMS(at)
		return e.Cut(), err
	})
	if err != nil {
		return db.AuditPage{}, fmt.Errorf("list audit: %w", err)
	}
	p := db.AuditPage{Entries: out}
	if len(out) == limit {
		p.NextBefore = out[len(out)-1].ID
	}
	return p, nil
}

// PruneAudit deletes up to limit entries older than cutoff, oldest first,
// and says how many it deleted.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	n, err := s.deleteOnce(ctx, lockPruneAudit, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return n, nil
}

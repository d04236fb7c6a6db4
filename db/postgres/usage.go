package postgres

import (
	"context"
	"fmt"

	"fieldhub/storage"
)

// usageTables are the tables of each kind DiskUsage reports.
var usageTables = []struct {
	kind   string
	tables []string
}{
	{storage.KindMessages, []string{"messages"}},
	{storage.KindRaw, []string{"reading_chunks"}},
	{storage.KindRollups, []string{"rollup_minutes", "rollup_hours"}},
	{storage.KindAudit, []string{"audit_log"}},
	{storage.KindAlerts, []string{"alerts", "webhook_deliveries"}},
}

// DiskUsage reads PostgreSQL's own accounting: each table's size with its
// indexes and TOAST data, and its row count as the planner last estimated it.
func (s *Store) DiskUsage(ctx context.Context) (storage.DiskUsage, error) {
	var u storage.DiskUsage
	if err := s.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&u.Total); err != nil {
		return u, fmt.Errorf("disk usage: %w", err)
	}
	for _, k := range usageTables {
		ku := storage.KindUsage{Kind: k.kind}
		err := s.pool.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint,
			COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint
			FROM pg_class c WHERE c.oid = ANY($1::regclass[])`, k.tables).Scan(&ku.Bytes, &ku.Rows)
		if err != nil {
			return u, fmt.Errorf("disk usage of %v: %w", k.tables, err)
		}
		u.Kinds = append(u.Kinds, ku)
	}
	return u, nil
}

package postgres

import (
	"context"
	"fmt"
	"strconv"

	"fieldhub/db"
	"fieldhub/query"
	"fieldhub/storage"
)

// fleetMapper maps db.DeviceDocument onto devices d LEFT JOIN twins t in
// PostgreSQL: the JSON columns are text, read as jsonb; cutoff is
// db.OnlineCutoff(now), pasted as a number (it is ours, not the query's).
func fleetMapper(cutoff int64) query.FieldMapper {
	online := "(d.connected = 1 OR (COALESCE(d.last_activity_at, 0) > " + strconv.FormatInt(cutoff, 10) +
		" AND d.last_activity_at > COALESCE(d.disconnected_at, 0)))"
	return query.FieldMapper{
		"deviceId":           {Expr: "d.device_id", Type: query.String},
		"name":               {Expr: "d.name", Type: query.String},
		"status":             {Expr: "CASE WHEN d.enabled = 1 THEN 'enabled' ELSE 'disabled' END", Type: query.String},
		"connectionState":    {Expr: "CASE WHEN d.connected = 1 THEN 'Connected' ELSE 'Disconnected' END", Type: query.String},
		"online":             {Expr: online, Type: query.Bool},
		"authenticationType": {Expr: "d.auth_type", Type: query.String},
		// Whole milliseconds, exactly as db.LastActivityFormat writes them.
		"lastActivityTime": {Expr: `to_char(to_timestamp(d.last_activity_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '.' || lpad((d.last_activity_at % 1000)::text, 3, '0') || 'Z'`,
			Type: query.String},
		"tags":                         {Expr: "d.tags::jsonb", Type: query.JSON},
		"properties.desired":           {Expr: "COALESCE(t.desired, '{}')::jsonb", Type: query.JSON},
		"properties.desired.$version":  {Expr: "COALESCE(t.desired_version, 1)", Type: query.Number},
		"properties.reported":          {Expr: "COALESCE(t.reported, '{}')::jsonb", Type: query.JSON},
		"properties.reported.$version": {Expr: "COALESCE(t.reported_version, 1)", Type: query.Number},
	}
}

// QueryDevices runs one page of a fleet query with query's PostgreSQL
// compiler, in device id order by bytes (as SQLite orders them).
func (s *Store) QueryDevices(ctx context.Context, q db.DeviceQuery) ([]db.QueriedDevice, error) {
	if q.Limit < 1 || q.Limit > db.MaxQueryPage {
		return nil, storage.Invalid("pageSize", "page size must be from 1 to %d, got %d", db.MaxQueryPage, q.Limit)
	}
	where, args, err := query.CondSQL(q.Where, query.PostgreSQL.FirstParam(3), fleetMapper(db.OnlineCutoff(s.Now())))
	if err != nil {
		return nil, fmt.Errorf("compile fleet query: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+db.QueriedColumns+` FROM devices d LEFT JOIN twins t ON t.device_id = d.id
		WHERE d.device_id COLLATE "C" > $1 AND `+where+` ORDER BY d.device_id COLLATE "C" LIMIT $2`,
		append([]any{q.After, q.Limit}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("fleet query: %w", err)
	}
	defer rows.Close()
	var out []db.QueriedDevice
	for rows.Next() {
		qd, err := db.ScanQueried(rows)
		if err != nil {
			return nil, fmt.Errorf("fleet query: %w", err)
		}
		out = append(out, qd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet query: %w", err)
	}
	return out, nil
}

package db

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"fieldhub/storage"
)

// SQLite keeps no sizes per table, and the dbstat table that would read them
// is not compiled into the driver (and reads every page). So DiskUsage
// estimates from what is cheap: a table's row count from its first and last
// rowid (rows deleted in between are counted too, so it errs high), times the
// size of its newest rows — every column's length, plus the same for each
// index — which is where the bytes of a log go. A rollup table has no rowid:
// its rows are counted per metric up to a sample, and beyond it estimated
// from how densely the newest rows fill the metric's first to last bucket.

// usageSample is how many of a table's newest rows its row size is taken from.
const usageSample = 500

// rowOverhead is about what SQLite adds to a row or index entry: its header,
// rowid and cell pointer.
const rowOverhead = 10

// usageTables are the tables of each kind DiskUsage reports, rowid tables.
var usageTables = []struct {
	kind   string
	tables []string
}{
	{storage.KindMessages, []string{"messages"}},
	{storage.KindRaw, []string{"reading_chunks"}},
	{storage.KindAudit, []string{"audit_log"}},
	{storage.KindAlerts, []string{"alerts", "webhook_deliveries"}},
}

// rollupRowBytes is about what a rollup row takes: the key, four numbers.
const rollupRowBytes = 48

// rollupSample is how many of a metric's rollup rows are counted; beyond,
// their number is estimated from the newest ones' density.
const rollupSample = 200

// DiskUsage estimates the space each kind of record takes, and reads the
// file's size and free pages.
func (d *DB) DiskUsage(ctx context.Context) (storage.DiskUsage, error) {
	var u storage.DiskUsage
	var pages, free, size int64
	for _, p := range []struct {
		pragma string
		into   *int64
	}{{"page_count", &pages}, {"freelist_count", &free}, {"page_size", &size}} {
		if err := d.read.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.into); err != nil {
			return u, fmt.Errorf("disk usage: %s: %w", p.pragma, err)
		}
	}
	u.Total, u.Free = pages*size, free*size
	for _, k := range usageTables {
		ku := storage.KindUsage{Kind: k.kind, Estimated: true}
		for _, table := range k.tables {
			rows, bytes, err := d.estimateTable(ctx, table)
			if err != nil {
				return u, fmt.Errorf("disk usage of %s: %w", table, err)
			}
			ku.Rows += rows
			ku.Bytes += bytes
		}
		u.Kinds = append(u.Kinds, ku)
	}
	rollups := storage.KindUsage{Kind: storage.KindRollups, Estimated: true}
	for _, t := range []struct {
		table string
		width int64
	}{{"rollup_minutes", 60_000}, {"rollup_hours", 3_600_000}} {
		// Per metric: its rows counted up to rollupSample; beyond, the
		// density of its newest rollupSample rows over its whole span.
		var rows float64
		err := d.read.QueryRowContext(ctx, fmt.Sprintf(`SELECT COALESCE(SUM(CASE WHEN n < %[3]d THEN n
				ELSE %[3]d.0 * (hi - lo + %[2]d) / (hi - recent + %[2]d) END), 0)
			FROM (SELECT
				(SELECT COUNT(*) FROM (SELECT 1 FROM %[1]s WHERE metric_id = m.id LIMIT %[3]d)) AS n,
				(SELECT MIN(bucket) FROM %[1]s WHERE metric_id = m.id) AS lo,
				(SELECT MAX(bucket) FROM %[1]s WHERE metric_id = m.id) AS hi,
				(SELECT MIN(bucket) FROM (SELECT bucket FROM %[1]s WHERE metric_id = m.id ORDER BY bucket DESC LIMIT %[3]d)) AS recent
				FROM metrics m)`, t.table, t.width, rollupSample)).Scan(&rows)
		if err != nil {
			return u, fmt.Errorf("disk usage of %s: %w", t.table, err)
		}
		rollups.Rows += int64(rows)
		rollups.Bytes += int64(rows) * rollupRowBytes
	}
	u.Kinds = slices.Insert(u.Kinds, 2, rollups) // after the raw readings
	return u, nil
}

// estimateTable estimates a rowid table's rows and bytes, its indexes included.
func (d *DB) estimateTable(ctx context.Context, table string) (rows, bytes int64, err error) {
	var lo, hi *int64
	if err := d.read.QueryRowContext(ctx, `SELECT MIN(rowid), MAX(rowid) FROM `+table).Scan(&lo, &hi); err != nil {
		return 0, 0, err
	}
	if lo == nil {
		return 0, 0, nil
	}
	rows = *hi - *lo + 1
	size, err := d.rowSize(ctx, table)
	if err != nil {
		return 0, 0, err
	}
	var avg float64
	err = d.read.QueryRowContext(ctx, fmt.Sprintf(`SELECT COALESCE(AVG(s), 0) FROM (SELECT %s AS s FROM %s ORDER BY rowid DESC LIMIT %d)`,
		size, table, usageSample)).Scan(&avg)
	if err != nil {
		return 0, 0, err
	}
	return rows, int64(avg * float64(rows)), nil
}

// rowSize is an SQL expression of the bytes a row of table takes with its
// index entries: the length of each column as stored (a number counts as
// its digits, near enough) and of each indexed column again.
func (d *DB) rowSize(ctx context.Context, table string) (string, error) {
	length := func(col string) string {
		return fmt.Sprintf(`COALESCE(length(CAST("%s" AS BLOB)), 0)`, col)
	}
	var terms []string
	cols, err := d.names(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return "", err
	}
	for _, c := range cols {
		terms = append(terms, length(c))
	}
	terms = append(terms, fmt.Sprint(rowOverhead))
	indexes, err := d.names(ctx, `SELECT name FROM pragma_index_list(?)`, table)
	if err != nil {
		return "", err
	}
	for _, idx := range indexes {
		icols, err := d.names(ctx, `SELECT name FROM pragma_index_info(?) WHERE name IS NOT NULL`, idx)
		if err != nil {
			return "", err
		}
		for _, c := range icols {
			terms = append(terms, length(c))
		}
		terms = append(terms, fmt.Sprint(rowOverhead))
	}
	return strings.Join(terms, " + "), nil
}

// names runs a query of one text column with one argument.
func (d *DB) names(ctx context.Context, query, arg string) ([]string, error) {
	rows, err := d.read.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

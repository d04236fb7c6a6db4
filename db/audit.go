package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The longest audit fields, in characters. Anything longer is cut to this
// length, its last character replaced by "…", where entries are stored (so
// no caller, HTTP, MQTT or CLI, can grow a row with what it was sent) and
// again where they are read (rows stored before the cut existed).
const (
	MaxAuditActor   = 256 // "token:" and a 200-character token name
	MaxAuditAction  = 64
	MaxAuditTarget  = 256 // a device id and a method name
	MaxAuditOutcome = 32
	MaxAuditDetail  = 1024
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
	e = e.Prepare(d.Now())
	_, err := d.write.ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		ms(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("record audit %s: %w", e.Action, err)
	}
	return nil
}

// Prepare returns e as every store records it: At defaults to now,
// Outcome to "ok", and every field is cut to its maximum.
func (e AuditEntry) Prepare(now time.Time) AuditEntry {
	if e.At.IsZero() {
		e.At = now
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	return e.Cut()
}

// Cut bounds every field to its maximum length; stores apply it to what
// they read too.
func (e AuditEntry) Cut() AuditEntry {
	e.Actor = cutAuditField(e.Actor, MaxAuditActor)
	e.Action = cutAuditField(e.Action, MaxAuditAction)
	e.Target = cutAuditField(e.Target, MaxAuditTarget)
	e.Outcome = cutAuditField(e.Outcome, MaxAuditOutcome)
	e.Detail = cutAuditField(e.Detail, MaxAuditDetail)
	return e
}

// cutAuditField keeps at most max characters of s, the last one "…" when
// s was longer. Invalid UTF-8 and control characters (a NUL, an escape
// sequence for a terminal reading an export) become U+FFFD.
func cutAuditField(s string, max int) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return utf8.RuneError
			}
			return r
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= max { // bytes: then surely no more characters
		return clean(s)
	}
	n := 0
	for i := range s {
		if n == max-1 {
			if utf8.RuneCountInString(s[i:]) == 1 {
				return clean(s)
			}
			return clean(s[:i]) + "…"
		}
		n++
	}
	return clean(s)
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Actor  string // exactly
	Action string // prefix, e.g. "device."
	Target string // exactly
	// ActorContains and TargetContains match part of the field, in any
	// letter case: "admin" finds "user:admin" and "token:Admin-CI".
	ActorContains, TargetContains string
	BeforeID                      int64 // 0 = newest
	Limit                         int
}

func (f AuditFilter) filtered() bool {
	return f.Actor != "" || f.Action != "" || f.Target != "" || f.ActorContains != "" || f.TargetContains != ""
}

// AuditScanWindow is how many entries one filtered page reads at most. A
// filter that matches rarely reads entries one by one (no index serves a
// substring), so a page stops after this many and hands back where it
// stopped: 1,000,000 entries take about 0.1 s (BenchmarkAuditFilter1M).
const AuditScanWindow = 1_000_000

// auditScanWindow is AuditScanWindow; tests make it small.
var auditScanWindow int64 = AuditScanWindow

// AuditPage is one page of a filtered audit log.
type AuditPage struct {
	Entries []AuditEntry
	// NextBefore is the BeforeID of the next, older page; 0 when no older
	// entries are left to read.
	NextBefore int64
	// WindowEnd is true when the page is short because it read
	// AuditScanWindow entries, not because older entries ran out.
	WindowEnd bool
}

// PageSize is how many entries f asks for: Limit, or 100 when it is not
// between 1 and 1000.
func (f AuditFilter) PageSize() int {
	if f.Limit <= 0 || f.Limit > 1000 {
		return 100
	}
	return f.Limit
}

// AuditEntries lists entries matching f.
func (d *DB) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	p, err := d.ListAudit(ctx, f)
	return p.Entries, err
}

// ListAudit reads one page of entries matching f, newest first, reading at
// most AuditScanWindow entries.
func (d *DB) ListAudit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	var conds []string
	var args []any
	if f.Actor != "" {
		conds = append(conds, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.ActorContains != "" {
		conds = append(conds, `actor LIKE ? ESCAPE '\'`)
		args = append(args, "%"+EscapeLike(f.ActorContains)+"%")
	}
	if f.Action != "" {
		conds = append(conds, `action LIKE ? ESCAPE '\'`)
		args = append(args, EscapeLike(f.Action)+"%")
	}
	if f.Target != "" {
		conds = append(conds, "target = ?")
		args = append(args, f.Target)
	}
	if f.TargetContains != "" {
		conds = append(conds, `target LIKE ? ESCAPE '\'`)
		args = append(args, "%"+EscapeLike(f.TargetContains)+"%")
	}
	if f.BeforeID > 0 {
		conds = append(conds, "id < ?")
		args = append(args, f.BeforeID)
	}
	f.Limit = f.PageSize()
	// The window: ids grow by one per entry, so the newest AuditScanWindow
	// entries below BeforeID have ids from floor up.
	var floor, oldest int64
	if f.filtered() {
		// Two subqueries: SQLite answers a lone min() or max() from the
		// b-tree's ends, but both in one SELECT read the whole table.
		var newest, first sql.NullInt64
		if err := d.read.QueryRowContext(ctx, `SELECT (SELECT max(id) FROM audit_log), (SELECT min(id) FROM audit_log)`).Scan(&newest, &first); err != nil {
			return AuditPage{}, fmt.Errorf("list audit: %w", err)
		}
		top := newest.Int64 + 1
		if f.BeforeID > 0 {
			top = min(top, f.BeforeID)
		}
		floor, oldest = top-auditScanWindow, first.Int64
		if floor > oldest {
			conds = append(conds, "id >= ?")
			args = append(args, floor)
		}
	}
	// Bytes, not characters: SQLite's text functions stop at a NUL, which
	// rows from before the cut may hold. Four bytes per character is enough
	// to see whether a field is longer than its maximum.
	field := func(name string, max int) string {
		return fmt.Sprintf("substr(CAST(%s AS BLOB), 1, %d)", name, 4*(max+1))
	}
	q := `SELECT id, at, ` + strings.Join([]string{field("actor", MaxAuditActor), field("action", MaxAuditAction),
		field("target", MaxAuditTarget), field("outcome", MaxAuditOutcome), field("detail", MaxAuditDetail)}, ", ") +
		` FROM audit_log`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit)
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return AuditPage{}, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var p AuditPage
	for rows.Next() {
		var e AuditEntry
		var at int64
		var f [5][]byte // an empty BLOB scans as nil, which a string refuses
		if err := rows.Scan(&e.ID, &at, &f[0], &f[1], &f[2], &f[3], &f[4]); err != nil {
			return AuditPage{}, fmt.Errorf("list audit: %w", err)
		}
		e.At = fromMS(at)
		e.Actor, e.Action, e.Target, e.Outcome, e.Detail = string(f[0]), string(f[1]), string(f[2]), string(f[3]), string(f[4])
		p.Entries = append(p.Entries, e.Cut())
	}
	if err := rows.Err(); err != nil {
		return AuditPage{}, fmt.Errorf("list audit: %w", err)
	}
	switch {
	case len(p.Entries) == f.Limit:
		p.NextBefore = p.Entries[len(p.Entries)-1].ID
	case f.filtered() && floor > oldest:
		p.NextBefore, p.WindowEnd = floor, true
	}
	return p, nil
}

// PruneAudit deletes up to limit entries older than cutoff, oldest first,
// and says how many it deleted. Callers repeat while it deletes limit, so
// that each transaction stays short beside ingest.
func (d *DB) PruneAudit(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return res.RowsAffected()
}

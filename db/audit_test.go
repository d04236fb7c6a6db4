package db_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// TestAuditLegacyRowsCut: SQLite cuts what it stores (the store suite,
// storetest.RunAudit, shows that for every store) and cuts again where it
// reads, so that rows stored before the cut existed cannot blow up a page.
func TestAuditLegacyRowsCut(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	huge := strings.Repeat("é", 5<<20/2) // 5 MB
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: huge, Action: huge, Target: huge, Outcome: huge, Detail: huge}); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := d.Reader().QueryRowContext(ctx, `SELECT max(length(actor) + length(action) + length(target) + length(outcome) + length(detail)) FROM audit_log`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if max := db.MaxAuditActor + db.MaxAuditAction + db.MaxAuditTarget + db.MaxAuditOutcome + db.MaxAuditDetail; stored > max {
		t.Errorf("stored %d characters, want at most %d", stored, max)
	}
	// A row from before the cut, written straight into the table; SQLite's
	// text functions would stop at its NUL.
	if _, err := d.Writer().ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (1, ?, ?, ?, ?, ?)`,
		huge, huge, huge, huge, "\x00"+huge); err != nil {
		t.Fatal(err)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{})
	if err != nil || len(entries) != 2 {
		t.Fatalf("got %d entries, %v; want 2", len(entries), err)
	}
	e := entries[1]
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"actor", e.Actor, db.MaxAuditActor},
		{"action", e.Action, db.MaxAuditAction},
		{"target", e.Target, db.MaxAuditTarget},
		{"outcome", e.Outcome, db.MaxAuditOutcome},
		{"detail", e.Detail, db.MaxAuditDetail},
	} {
		if n := utf8.RuneCountInString(f.value); n != f.max || !strings.HasSuffix(f.value, "…") {
			t.Errorf("legacy row: %s has %d characters, want %d ending in …", f.name, n, f.max)
		}
		if !utf8.ValidString(f.value) || strings.ContainsAny(f.value, "\x00\x1b") {
			t.Errorf("legacy row: %s holds invalid UTF-8 or control characters", f.name)
		}
	}
}

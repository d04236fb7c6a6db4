package db_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// TestAuditFieldsCut: every free-text field is cut to its stated length where
// entries are stored, whoever records them, and cut again where they are
// read, so rows written before the cut existed cannot blow up a page.
func TestAuditFieldsCut(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	huge := strings.Repeat("é", 5<<20/2) // 5 MB
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: huge, Action: huge, Target: huge, Outcome: huge, Detail: huge + "\x00\x1b[31m"}); err != nil {
		t.Fatal(err)
	}
	// A row from before the cut, written straight into the table.
	if _, err := d.Writer().ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (1, ?, ?, ?, ?, ?)`,
		huge, huge, huge, huge, "\x00"+huge); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := d.Reader().QueryRowContext(ctx, `SELECT max(length(actor) + length(action) + length(target) + length(outcome) + length(detail)) FROM audit_log WHERE at > 1`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if max := db.MaxAuditActor + db.MaxAuditAction + db.MaxAuditTarget + db.MaxAuditOutcome + db.MaxAuditDetail; stored > max {
		t.Errorf("stored %d characters, want at most %d", stored, max)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(entries))
	}
	for _, e := range entries {
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
				t.Errorf("entry %d: %s has %d characters, want %d ending in …", e.ID, f.name, n, f.max)
			}
			if !utf8.ValidString(f.value) || strings.ContainsAny(f.value, "\x00\x1b") {
				t.Errorf("entry %d: %s holds invalid UTF-8 or control characters", e.ID, f.name)
			}
		}
	}
	// Short values are kept as they are.
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "user:alice", Action: "user.login", Target: "alice", Detail: "from 10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	entries, err = d.AuditEntries(ctx, db.AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e := entries[0]; e.Actor != "user:alice" || e.Action != "user.login" || e.Target != "alice" || e.Outcome != "ok" || e.Detail != "from 10.0.0.1" {
		t.Errorf("short entry changed: %+v", e)
	}
}

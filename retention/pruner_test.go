package retention_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/retention"
)

// TestPrune: nothing pruned audit rows, and db.DeleteExpiredSessions was
// never called. A pass deletes entries past the retention (in batches, so a
// long backlog goes too) and expired sessions, and keeps the rest.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	d.Now = func() time.Time { return now }
	for i := range 4500 { // more than two batches, 91 days old and older
		if err := d.RecordAudit(ctx, db.AuditEntry{At: now.Add(-91*24*time.Hour - time.Duration(i)*time.Second), Actor: "cli", Action: "device.create"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{At: now.Add(-89 * 24 * time.Hour), Actor: "cli", Action: "user.create", Target: "kept"}); err != nil {
		t.Fatal(err)
	}
	u, err := d.CreateUser(ctx, "alice", "x", db.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	d.Now = func() time.Time { return now.Add(-2 * time.Hour) }
	if err := d.CreateSession(ctx, "expired", u.ID, "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSession(ctx, "live", u.ID, "c", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	d.Now = func() time.Time { return now }

	p := retention.New(retention.Config{Store: d, Now: func() time.Time { return now }})
	r, err := p.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.AuditEntries != 4500 || r.Sessions != 1 {
		t.Errorf("pruned %+v, want 4500 audit entries and 1 session", r)
	}
	left, err := d.AuditEntries(ctx, db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Target != "kept" {
		t.Errorf("audit after pruning = %+v, want only the 89-day-old entry", left)
	}
	if _, err := d.Session(ctx, "live"); err != nil {
		t.Errorf("live session: %v", err)
	}
	var sessions int
	if err := d.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&sessions); err != nil || sessions != 1 {
		t.Errorf("%d sessions stored (%v), want 1", sessions, err)
	}
}

// TestPrunerRunsUntilClosed: Start prunes at once and on its ticker; Close
// stops it.
func TestPrunerRunsUntilClosed(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	if err := d.RecordAudit(ctx, db.AuditEntry{At: time.Now().Add(-2 * time.Hour), Actor: "cli", Action: "device.create"}); err != nil {
		t.Fatal(err)
	}
	p := retention.New(retention.Config{Store: d, AuditRetention: time.Hour, Every: time.Millisecond})
	p.Start(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		left, err := d.AuditEntries(ctx, db.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pruner did not prune")
		}
	}
	p.Close()
	p.Close() // twice: nothing
}

package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// fillAudit writes n audit entries in one transaction: actors user:admin
// (most), user:olga, token:ci-deploy and device:pump-<k>; actions and targets
// as the hub writes them.
func fillAudit(tb testing.TB, d *db.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	tx, err := d.Writer().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range n {
		actor, action, target := "user:admin", "method.invoke", fmt.Sprintf("pump-%d/reboot", i%5000)
		switch {
		case i%10 == 1:
			actor = "user:olga"
		case i%10 == 2:
			actor, action, target = "token:ci-deploy", "device.update", fmt.Sprintf("pump-%d", i%5000)
		case i%10 >= 6:
			actor, action, target = fmt.Sprintf("device:pump-%d", i%5000), "device.connected", fmt.Sprintf("pump-%d", i%5000)
		}
		if _, err := st.ExecContext(ctx, start+int64(i)*1000, actor, action, target, "ok", "remote 10.0.0.1:5000"); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAuditFilter1M: one page of the audit log over 1,000,000 entries
// for filters that match often (stops early), rarely and never (reads every
// entry). The issue asks for < 200 ms.
func BenchmarkAuditFilter1M(b *testing.B) {
	d := dbtest.MustOpen(b)
	fillAudit(b, d, 1_000_000)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    db.AuditFilter
	}{
		{"actor-common", db.AuditFilter{ActorContains: "ADMIN"}},
		{"actor-rare", db.AuditFilter{ActorContains: "olga", TargetContains: "pump-4999"}},
		{"target-never", db.AuditFilter{TargetContains: "no-such-device"}},
		{"actor-never", db.AuditFilter{ActorContains: "nobody"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.f.Limit = 100
			for b.Loop() {
				if _, err := d.AuditEntries(ctx, bc.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

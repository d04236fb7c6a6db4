package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunDiskUsage runs the suite of the storage page's figures.
func RunDiskUsage(t *testing.T, b Backend) {
	cases(t, b, test{"KindsAndGrowth", testDiskUsage})
}

// testDiskUsage: every kind is reported, in order, and the audit log's
// figure grows with the audit log while the database holds it all.
func testDiskUsage(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	before, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, k := range before.Kinds {
		kinds = append(kinds, k.Kind)
	}
	want := []string{storage.KindMessages, storage.KindRaw, storage.KindRollups, storage.KindAudit, storage.KindAlerts}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("kinds = %q, want %q", kinds, want)
	}
	detail := strings.Repeat("x", 400)
	for i := range 2000 {
		if err := s.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: "device.create", Target: fmt.Sprintf("dev%d", i), Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	audit := after.Kinds[3]
	// 2,000 entries of over 400 bytes each: at least 800 kB more.
	if grew := audit.Bytes - before.Kinds[3].Bytes; grew < 800_000 || audit.Bytes > after.Total {
		t.Errorf("audit log: %+v after 2,000 entries of 400 bytes (grew %d bytes), database %d bytes; want at least 800,000 more, within the database",
			audit, grew, after.Total)
	}
	if after.Total < before.Total || after.Free > after.Total {
		t.Errorf("database %d bytes (%d free) after %d bytes before", after.Total, after.Free, before.Total)
	}
}

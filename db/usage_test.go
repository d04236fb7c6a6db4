package db_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// TestDiskUsageRollupRows: the rollup row estimate counts a sparse
// metric's rows (two readings 20 days apart are 4 rows, not 20 days of
// minutes) and extrapolates a dense one's from its newest rows.
func TestDiskUsageRollupRows(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	for _, id := range []string{"sparse", "dense"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	tel := dbtest.Telemetry(t, d)
	now := time.Now().Truncate(time.Hour)
	rec := func(id string, at time.Time) telemetry.Record {
		return telemetry.NewRecord(telemetry.Message{DeviceID: id, EnqueuedAt: at, AuthMethod: "sas-primary", Body: []byte(`{"x":1}`)})
	}
	recs := []telemetry.Record{rec("sparse", now.Add(-20*24*time.Hour)), rec("sparse", now.Add(-time.Hour))}
	for i := range 600 { // one a minute for 10 hours: 600 minute rows, 10 hour rows
		recs = append(recs, rec("dense", now.Add(-10*time.Hour+time.Duration(i)*time.Minute)))
	}
	if _, err := tel.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := tel.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := d.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rollups storage.KindUsage
	for _, k := range u.Kinds {
		if k.Kind == storage.KindRollups {
			rollups = k
		}
	}
	// sparse: 2 minute rows and 2 hour rows; dense: 600 and 10.
	if want := int64(2 + 2 + 600 + 10); rollups.Rows < want-5 || rollups.Rows > want+5 {
		t.Errorf("rollups = %+v, want about %d rows", rollups, want)
	}
}

package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
	"fieldhub/telemetry/telemetrytest"
)

// TestConformance runs the telemetry storage suite on a real SQLite file,
// the registry's devices in the same file as in the hub.
func TestConformance(t *testing.T) {
	telemetrytest.Run(t, func(t *testing.T) telemetrytest.Backend {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "fieldhub.db")
		var d *db.DB
		// The registry's clock moves on a millisecond a call, so that a
		// device created again differs from the one before by its
		// created_at, as it would in the hub.
		now := telemetrytest.T0
		return telemetrytest.Backend{
			Open: func(t *testing.T) (telemetry.Storage, func()) {
				var err error
				if d, err = db.Open(ctx, path, db.Options{Synchronous: "NORMAL"}); err != nil {
					t.Fatal(err)
				}
				d.Now = func() time.Time { now = now.Add(time.Millisecond); return now }
				return sqlite.New(d), func() { d.Close() }
			},
			CreateDevice: func(t *testing.T, id string) {
				if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
					t.Fatal(err)
				}
			},
			DeleteDevice: func(t *testing.T, id string) {
				if err := d.DeleteDevice(ctx, id); err != nil {
					t.Fatal(err)
				}
			},
			LastActivity: func(t *testing.T, id string) time.Time {
				dev, err := d.Device(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return dev.LastActivity
			},
		}
	})
}

package postgres_test

import (
	"context"
	"errors"
	"testing"

	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	"fieldhub/telemetry/postgres"
)

// testDeviceDeletedDuringCommit: the message log has no foreign keys
// (migration 0015), so a group commit locks the devices it logs for. A
// device deleted while such a commit is open waits for it, and its messages
// are then deleted with it: none outlives its device. Before the lock the
// delete went ahead at once and the commit's messages stayed behind.
func testDeviceDeletedDuringCommit(t *testing.T, url string) {
	ctx := context.Background()
	d, err := dbpostgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, id := range []string{"checked-with", "looked-up", "cached"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := postgres.New(ctx, d.Pool(), "")
	if err != nil {
		t.Fatal(err)
	}
	// The engine finds a device it has not seen with FindDevice and checks
	// one it has cached with CheckDevicesAtCommit (DevicesCreated is the
	// interface's other way): each must lock.
	for _, lookup := range []struct {
		device string
		find   func(tx telemetry.Tx, row telemetry.DeviceRow) error
	}{
		{"looked-up", func(tx telemetry.Tx, _ telemetry.DeviceRow) error {
			_, _, err := tx.FindDevice(ctx, "looked-up")
			return err
		}},
		{"checked-with", func(tx telemetry.Tx, row telemetry.DeviceRow) error {
			created, err := tx.DevicesCreated(ctx, []int64{row.ID})
			if err == nil && created[row.ID] != row.Created {
				t.Errorf("DevicesCreated = %v, want %d: %d", created, row.ID, row.Created)
			}
			return err
		}},
	} {
		t.Run(lookup.device, func(t *testing.T) {
			dev, err := d.Device(ctx, lookup.device)
			if err != nil {
				t.Fatal(err)
			}
			var row telemetry.DeviceRow
			if err := d.Pool().QueryRow(ctx, `SELECT id, created_at FROM devices WHERE device_id = $1`, dev.DeviceID).Scan(&row.ID, &row.Created); err != nil {
				t.Fatal(err)
			}
			tx, err := st.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := lookup.find(tx, row); err != nil {
				t.Fatal(err)
			}
			msg := telemetry.Message{DeviceID: lookup.device, AuthMethod: "sas-primary", Body: []byte(`{"a":1}`)}
			if _, err := tx.InsertMessages(ctx, []telemetry.MessageRow{{Device: row.ID, Message: &msg}}); err != nil {
				t.Fatal(err)
			}
			deleted := make(chan error, 1)
			go func() { deleted <- d.DeleteDevice(ctx, lookup.device) }()
			// Until it waits for the commit's lock on the device, or is done
			// (it did not wait: the failure below says what that left).
			testkit.WaitFor(t, "the delete to wait or end", func() bool {
				var waiting bool
				err := d.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM devices%')`).Scan(&waiting)
				return err == nil && waiting || len(deleted) > 0
			})
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-deleted; err != nil {
				t.Fatal(err)
			}
			var left int
			if err := d.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE device_id = $1`, row.ID).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Errorf("%d messages of the deleted device are left, want none", left)
			}
		})
	}
	// A cached device is locked with the commit: deleted before, it fails
	// the commit (the engine looks it up again), and nothing is kept.
	t.Run("cached", func(t *testing.T) {
		var row telemetry.DeviceRow
		if err := d.Pool().QueryRow(ctx, `SELECT id, created_at FROM devices WHERE device_id = 'cached'`).Scan(&row.ID, &row.Created); err != nil {
			t.Fatal(err)
		}
		tx, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := tx.(telemetry.CheckAtCommit).CheckDevicesAtCommit(ctx, []telemetry.DeviceRow{row}); err != nil {
			t.Fatal(err)
		}
		msg := telemetry.Message{DeviceID: "cached", AuthMethod: "sas-primary", Body: []byte(`{"a":1}`)}
		if _, err := tx.InsertMessages(ctx, []telemetry.MessageRow{{Device: row.ID, Message: &msg}}); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteDevice(ctx, "cached"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); !errors.Is(err, telemetry.ErrDevicesChanged) {
			t.Errorf("commit = %v, want telemetry.ErrDevicesChanged", err)
		}
		var left int
		if err := d.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE device_id = $1`, row.ID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Errorf("%d messages of the deleted device are left, want none", left)
		}
	})
}

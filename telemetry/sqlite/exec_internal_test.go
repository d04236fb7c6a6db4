package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
)

// openStorage is a database with one device and its telemetry storage.
func openStorage(t *testing.T) (*db.DB, *Storage, int64) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	dev, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "sensor-1"})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := d.Reader().QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, dev.DeviceID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return d, New(d), id
}

// plainRows are n messages of the plain layout.
func plainRows(device int64, n int) []telemetry.MessageRow {
	rows := make([]telemetry.MessageRow, n)
	for i := range rows {
		rows[i] = telemetry.MessageRow{Device: device, Message: &telemetry.Message{
			AuthMethod: "sas-primary", ContentType: "application/json",
			Body: fmt.Appendf(nil, `{"n":%d}`, i), EnqueuedAt: time.UnixMilli(int64(1e12 + i)),
		}}
	}
	return rows
}

// TestInsertMessagesKeepsItsParameters: an INSERT's parameters are built in
// a buffer the storage keeps from one statement and transaction to the
// next, not converted anew by database/sql for every statement (40 bytes a
// parameter, and 16 more for the []any it was given: 280 bytes a plain
// row). What is left per row is the boxing of its id, time and body, and
// its id in the result.
func TestInsertMessagesKeepsItsParameters(t *testing.T) {
	ctx := context.Background()
	_, s, device := openStorage(t)
	rows := plainRows(device, insertChunk)
	insert := func() {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for range 8 {
			if _, err := tx.InsertMessages(ctx, rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	insert() // the buffer and the statement cache filled
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const rounds = 10
	for range rounds {
		insert()
	}
	runtime.ReadMemStats(&after)
	perRow := float64(after.TotalAlloc-before.TotalAlloc) / (rounds * 8 * insertChunk)
	t.Logf("%.0f bytes a plain row", perRow)
	if perRow > 150 {
		t.Errorf("inserting a plain row allocated %.0f bytes, want at most 150", perRow)
	}
}

// TestInsertMessagesOutsideTheTransaction: once the connection is no longer
// in the write transaction (database/sql rolled it back on its own, as when
// its context ends), an INSERT on the driver's connection is refused
// rather than committed by itself.
func TestInsertMessagesOutsideTheTransaction(t *testing.T) {
	ctx := context.Background()
	d, s, device := openStorage(t)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	w := tx.(*writeTx)
	if err := w.tx.Rollback(); err != nil { // underneath the writeTx
		t.Fatal(err)
	}
	_, err = tx.InsertMessages(ctx, plainRows(device, 3))
	if !errors.Is(err, errTxGone) {
		t.Errorf("InsertMessages after the transaction ended = %v, want %v", err, errTxGone)
	}
	var n int
	if err := d.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d messages stored, want none", n)
	}
}

// TestInsertMessagesAfterCommit: a writeTx's INSERT after its end is an
// error, not a statement on a connection the pool gave to someone else.
func TestInsertMessagesAfterCommit(t *testing.T) {
	ctx := context.Background()
	_, s, device := openStorage(t)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.InsertMessages(ctx, plainRows(device, 1)); !errors.Is(err, errTxGone) {
		t.Errorf("InsertMessages after Commit = %v, want %v", err, errTxGone)
	}
	if err := tx.Rollback(); err != nil {
		t.Errorf("Rollback after Commit = %v, want nil", err)
	}
}

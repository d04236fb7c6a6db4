package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/storage"
)

// fullDB is a real database that behaves as on a full disk (see
// dbtest.FillUp), with a table to fill.
func fullDB(t *testing.T) (d *db.DB, free func()) {
	t.Helper()
	d = dbtest.MustOpen(t)
	if _, err := d.Writer().ExecContext(context.Background(), "CREATE TABLE filler (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	return d, dbtest.FillUp(t, d)
}

// fillErr is the error of a write that does not fit.
func fillErr(t *testing.T, d *db.DB) error {
	t.Helper()
	_, err := d.Writer().ExecContext(context.Background(), "INSERT INTO filler VALUES (zeroblob(200000))")
	if err == nil {
		t.Fatal("a 200 KB write fitted into a full database")
	}
	return err
}

func TestFaultKind(t *testing.T) {
	d, _ := fullDB(t)
	full := fillErr(t, d)
	for _, tt := range []struct {
		name string
		err  error
		kind string
	}{
		{"SQLite full", full, "disk full"},
		{"wrapped", fmt.Errorf("store messages: %w", full), "disk full"},
		{"not found", storage.ErrNotFound, ""},
		{"other", errors.New("boom"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := db.FaultKind(tt.err); got != tt.kind {
				t.Errorf("FaultKind(%v) = %q, want %q", tt.err, got, tt.kind)
			}
		})
	}
}

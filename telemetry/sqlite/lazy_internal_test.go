package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"fieldhub/db"
)

// TestLazyTxRestoresSynchronous: a checkpoint step's transaction commits at
// synchronous=NORMAL, and however it ends the writer connection is back at
// the database's setting (FULL) before any message or registry write can
// take it; what it wrote is committed, or not, as with any transaction.
func TestLazyTxRestoresSynchronous(t *testing.T) {
	tests := []struct {
		name      string
		commit    bool
		watermark int64 // what a reader finds after
	}{
		{"commit", true, 42},
		{"rollback", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			s := New(d)
			if got := synchronous(t, d); got != 2 {
				t.Fatalf("writer's synchronous before = %d, want 2 (FULL)", got)
			}
			tx, err := s.BeginLazy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var in int
			if err := tx.(*lazyTx).tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&in); err != nil {
				t.Fatal(err)
			}
			if in != syncNormal {
				t.Errorf("synchronous in the lazy transaction = %d, want %d (NORMAL)", in, syncNormal)
			}
			if err := tx.SetWatermark(ctx, 42); err != nil {
				t.Fatal(err)
			}
			if tc.commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Errorf("Rollback after the end = %v, want nil (the engine defers it)", err)
			}
			if got := synchronous(t, d); got != 2 {
				t.Errorf("writer's synchronous after = %d, want 2 (FULL)", got)
			}
			var w int64
			if err := d.Reader().QueryRowContext(ctx, `SELECT folded_message_id FROM telemetry_state WHERE id = 1`).Scan(&w); err != nil {
				t.Fatal(err)
			}
			if w != tc.watermark {
				t.Errorf("watermark = %d, want %d", w, tc.watermark)
			}
		})
	}
}

// synchronous reads the writer connection's setting.
func synchronous(t *testing.T, d *db.DB) int {
	t.Helper()
	var level int
	if err := d.Writer().QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil {
		t.Fatal(err)
	}
	return level
}

// Package dbtest opens real, throwaway Fieldhub databases for tests.
package dbtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// MustOpen opens a fresh database file in t.TempDir() and closes it at cleanup.
// Synchronous is NORMAL: tests need crash safety, not power-loss safety, and fsync is slow.
func MustOpen(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// FillUp makes d's writer behave as on a full disk: from now on, a write
// that needs a page more than the file has fails with SQLite's "database or
// disk is full" (the real error, through max_page_count). The returned
// function frees the space again.
func FillUp(t testing.TB, d *db.DB) (free func()) {
	t.Helper()
	ctx := context.Background()
	var pages int
	if err := d.Writer().QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatalf("fill up: %v", err)
	}
	// The writer pool has one connection that lives as long as d, so the
	// setting stays with it.
	if _, err := d.Writer().ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatalf("fill up: %v", err)
	}
	return func() {
		t.Helper()
		if _, err := d.Writer().ExecContext(ctx, "PRAGMA max_page_count = 4294967294"); err != nil {
			t.Fatalf("free space: %v", err)
		}
	}
}

// Telemetry opens the telemetry store of d, rebuilding what d's message log
// holds after the last checkpoint, as the hub does when it starts.
func Telemetry(t testing.TB, d *db.DB) *telemetry.Store {
	t.Helper()
	s, err := telemetry.Open(context.Background(), sqlite.New(d), telemetry.Options{})
	if err != nil {
		t.Fatalf("open telemetry: %v", err)
	}
	return s
}

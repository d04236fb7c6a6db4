// Package dbtest opens real, throwaway Fieldhub databases for tests.
package dbtest

import (
	"context"
	"path/filepath"
	"testing"

	"fieldhub/db"
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

package db_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"fieldhub/db"
)

// TestConnectionCacheSizes: every connection of both pools has the page
// cache Open gives it (SQLite's caches are outside Go's memory limit, and
// the readers are two per CPU), read back with PRAGMA cache_size from
// connections held at once, so that each is a different one.
func TestConnectionCacheSizes(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check := func(pool *sql.DB, name string, conns int, wantKiB int) {
		t.Helper()
		held := make([]*sql.Conn, 0, conns)
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := range conns {
			c, err := pool.Conn(ctx)
			if err != nil {
				t.Fatalf("%s connection %d: %v", name, i, err)
			}
			held = append(held, c)
			var size int
			if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&size); err != nil {
				t.Fatalf("%s connection %d: %v", name, i, err)
			}
			if size != -wantKiB {
				t.Errorf("%s connection %d: cache_size %d, want %d (KiB)", name, i, size, -wantKiB)
			}
		}
	}
	// The sizes themselves are what bench/README.md measured (issue 10,
	// fifth and eighth rounds): the writer's 2 MB holds what commits
	// touch again, more is memory outside the hub's limit.
	if db.WriterCacheKiB != 2000 || db.ReaderCacheKiB != 2000 {
		t.Errorf("cache sizes writer %d, reader %d KiB; want 2000 and 2000", db.WriterCacheKiB, db.ReaderCacheKiB)
	}
	check(d.Writer(), "writer", 1, db.WriterCacheKiB)
	check(d.Reader(), "reader", d.Reader().Stats().MaxOpenConnections, db.ReaderCacheKiB)
}

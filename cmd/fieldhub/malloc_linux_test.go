package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// TestMallocArenasLimited: SQLite run on many OS threads at once, as the
// hub's goroutines run it, leaves glibc with no more arenas than
// mallocArenas (without the limit glibc gives each thread one of its own,
// up to eight per CPU).
func TestMallocArenasLimited(t *testing.T) {
	if countMallocArenas() < 0 {
		t.Skip("not glibc: no arenas to count")
	}
	const threads = 16
	pool, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "arenas.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxOpenConns(threads)
	// Each goroutine holds its own OS thread until all have run their
	// query, so that the queries run on that many threads.
	var ran, hold sync.WaitGroup
	ran.Add(threads)
	hold.Add(1)
	errs := make(chan error, threads)
	for range threads {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var n int
			errs <- pool.QueryRowContext(context.Background(), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000) SELECT count(*) FROM (SELECT x FROM c ORDER BY random())").Scan(&n)
			ran.Done()
			hold.Wait()
		}()
	}
	ran.Wait()
	got := countMallocArenas()
	hold.Done()
	for range threads {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got > mallocArenas {
		t.Errorf("malloc arenas after queries on %d threads: %d, want at most %d", threads, got, mallocArenas)
	}
}

package migrations

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	_ "github.com/mattn/go-sqlite3"
)

func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestEachMigrationIsOneTransaction: a migration that fails half-way leaves
// nothing of itself behind and is not recorded; the ones before it stay.
func TestEachMigrationIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"d/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
		"d/0002_b.sql": {Data: []byte("CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")},
	}
	ms, err := load(fsys, "d")
	if err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t)
	err = run(ctx, db, SQLite, ms, "test.db")
	if err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
		t.Fatalf("apply = %v, want the failure of 0002_b.sql", err)
	}
	if v, err := Version(ctx, db); err != nil || v != 1 {
		t.Errorf("version = %d, %v; want 1", v, err)
	}
	if !tableExists(t, db, "a") || tableExists(t, db, "b") {
		t.Errorf("tables a, b exist: %v, %v; want a only", tableExists(t, db, "a"), tableExists(t, db, "b"))
	}
}

// TestApplyRunsWhatIsMissing: a second Apply runs only newer files, and a
// Lock statement runs in each migration's transaction and in the one that
// creates the table of applied migrations.
func TestApplyRunsWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{"d/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")}}
	ms, err := load(fsys, "d")
	if err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t)
	locking := Dialect{Name: "d", Lock: "INSERT INTO a VALUES (0)"}
	if err := run(ctx, db, SQLite, ms, "test.db"); err != nil {
		t.Fatal(err)
	}
	fsys["d/0002_b.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (x INTEGER);")}
	if ms, err = load(fsys, "d"); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, db, locking, ms, "test.db"); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	var locks, recorded int
	if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM a), (SELECT COUNT(*) FROM schema_migrations)`).Scan(&locks, &recorded); err != nil {
		t.Fatal(err)
	}
	if locks != 2 || recorded != 2 {
		t.Errorf("lock ran %d times, %d migrations recorded; want 2 (the table, migration 2) and 2", locks, recorded)
	}
	// Older than the database: refused, naming both versions.
	err = run(ctx, db, SQLite, ms[:1], "test.db")
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "up to 1") {
		t.Errorf("apply of older migrations = %v, want ErrSchemaTooNew naming 2 and 1", err)
	}
}

func TestLoadChecksNames(t *testing.T) {
	for _, tt := range []struct {
		files []string
		want  string
	}{
		{[]string{"0001_a.sql", "1_b.sql"}, "share a version"},
		{[]string{"a.sql"}, "NNNN_name.sql"},
		{[]string{"0000_zero.sql"}, "NNNN_name.sql"},
		{[]string{"0001_a.txt"}, "NNNN_name.sql"},
	} {
		fsys := fstest.MapFS{}
		for _, f := range tt.files {
			fsys["d/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := load(fsys, "d"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("load %v = %v, want an error saying %q", tt.files, err, tt.want)
		}
	}
	// Both dialects: branches that each add the next version meet here.
	var counts []int
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := Load(d)
		if err != nil || len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "0001_foundation.sql" {
			t.Fatalf("Load(%s) = %d migrations, %v", d.Name, len(ms), err)
		}
		for i, m := range ms {
			if m.Version != i+1 {
				t.Errorf("%s migration %s: version %d, want %d (no gaps)", d.Name, m.Name, m.Version, i+1)
			}
		}
		counts = append(counts, len(ms))
	}
	if counts[0] != counts[1] {
		t.Errorf("SQLite has %d migrations and PostgreSQL %d: number a change the same in both (a SELECT 1 where a dialect needs nothing)", counts[0], counts[1])
	}
}

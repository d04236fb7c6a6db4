// Package migrations is the one schema mechanism of every database Fieldhub
// keeps its state in. Each dialect has a folder of numbered SQL files,
// embedded in the binary; Apply runs each file not yet applied in a
// transaction of its own, records it in the table schema_migrations, and
// refuses a database whose recorded version is newer than the binary knows.
// One sequence covers a whole database, telemetry's tables included: they
// refer to the devices table, and backups and restores check one number.
//
// To add a migration, add NNNN_what.sql with the next free number to every
// dialect's folder (sqlite/, and postgres/ once it exists), meaning the
// same change in each dialect's SQL. Never edit or renumber a file that was
// released: databases record which numbers they have, so an edited file
// would not run again where it already ran. Each file runs in one
// transaction: statements a dialect cannot run in a transaction (SQLite's
// VACUUM, PostgreSQL's CREATE INDEX CONCURRENTLY) do not belong here.
//
// To add a dialect, add its folder to the embed pattern below and a Dialect
// value naming it, with the statement that serializes migrations when
// several processes may start at once (PostgreSQL: an advisory lock); the
// store's package opens the database with its database/sql driver (for
// PostgreSQL, pgx's stdlib over the store's pool) and calls Apply. Queries use $1-style placeholders, which both SQLite
// (mattn/go-sqlite3) and PostgreSQL accept.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Dialect is one kind of database and its folder of migrations.
type Dialect struct {
	// Name is the folder of its files: sqlite, postgres.
	Name string
	// Lock, when set, is run first in every migration's transaction, so
	// that processes starting at once apply each migration once (with
	// SQLite the writer's BEGIN IMMEDIATE does that already).
	Lock string
}

// SQLite is the embedded default store's dialect (package db).
var SQLite = Dialect{Name: "sqlite"}

// Postgres is the PostgreSQL store's dialect (package db/postgres). Its
// lock is a transaction-scoped advisory lock (the key is "fieldhub" in
// ASCII), so hubs starting at once against one database take turns and
// each migration runs once; the lock ends with the transaction.
var Postgres = Dialect{Name: "postgres", Lock: `SELECT pg_advisory_xact_lock(112628639838562)`}

// Migration is one numbered file.
type Migration struct {
	Version int
	Name    string // the file name, recorded with the version
	SQL     string
}

// ErrSchemaTooNew means the database was written by a newer Fieldhub.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// Load reads a dialect's migrations in version order.
func Load(d Dialect) ([]Migration, error) { return load(files, d.Name) }

func load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", dir, err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_name.sql", dir, name)
		}
		b, err := fs.ReadFile(fsys, dir+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", dir, name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// Latest is the newest version a dialect's migrations reach.
func Latest(d Dialect) (int, error) {
	ms, err := Load(d)
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	return ms[len(ms)-1].Version, nil
}

// Querier is a database, a connection or a transaction.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Version reads the newest migration recorded in a database.
func Version(ctx context.Context, q Querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Apply brings a database to the newest migration of its dialect, each
// migration in a transaction of its own. It refuses (ErrSchemaTooNew) a
// database at a version newer than the binary knows; where names the
// database in that error.
func Apply(ctx context.Context, db *sql.DB, d Dialect, where string) error {
	ms, err := Load(d)
	if err != nil {
		return err
	}
	return run(ctx, db, d, ms, where)
}

func run(ctx context.Context, db *sql.DB, d Dialect, ms []Migration, where string) error {
	if len(ms) == 0 {
		return fmt.Errorf("no %s migrations in the binary", d.Name)
	}
	if err := createTable(ctx, db, d); err != nil {
		return err
	}
	current, err := Version(ctx, db)
	if err != nil {
		return err
	}
	if latest := ms[len(ms)-1].Version; current > latest {
		return fmt.Errorf("%w: %s is at schema version %d, this binary knows up to %d; upgrade fieldhub", ErrSchemaTooNew, where, current, latest)
	}
	for _, m := range ms {
		if m.Version > current {
			if err := apply(ctx, db, d, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// createTable creates the table of applied migrations, under the dialect's
// lock: two PostgreSQL servers' CREATE TABLE IF NOT EXISTS at once can
// both try to create it, and one then fails.
func createTable(ctx context.Context, db *sql.DB, d Dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create migrations table: begin: %w", err)
	}
	defer tx.Rollback()
	if d.Lock != "" {
		if _, err := tx.ExecContext(ctx, d.Lock); err != nil {
			return fmt.Errorf("create migrations table: lock: %w", err)
		}
	}
	// BIGINT: Unix milliseconds outgrow PostgreSQL's INTEGER; SQLite reads
	// it as INTEGER, which databases made before this package have.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create migrations table: commit: %w", err)
	}
	return nil
}

// apply runs one migration unless another process did meanwhile.
func apply(ctx context.Context, db *sql.DB, d Dialect, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback()
	if d.Lock != "" {
		if _, err := tx.ExecContext(ctx, d.Lock); err != nil {
			return fmt.Errorf("migration %s: lock: %w", m.Name, err)
		}
	}
	if v, err := Version(ctx, tx); err != nil || v >= m.Version {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

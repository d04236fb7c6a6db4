// Package db holds the hub's records outside telemetry (devices, users,
// sessions, API tokens, the audit log, CA certificates, the cloud-to-device
// queue, twins, MQTT sessions, settings) with their rules (validation,
// bounds, the online rule), and DB, the SQLite store that keeps them. DB
// implements app.Store, made of the interfaces the packages using it
// declare; package db/storetest is the suite every store passes and
// db/migrations the schema of each dialect. The message log and time series
// tables in the same file are telemetry's (package telemetry/sqlite),
// written through DB's one writer connection.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fieldhub/db/migrations"
	"fieldhub/storage"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// invalid is storage.Invalid, short for this package's many checks.
func invalid(field, format string, args ...any) error {
	return storage.Invalid(field, format, args...)
}

// DB is the Fieldhub database: one writer connection (SQLite allows one writer at a
// time, so queuing in Go is cheaper than busy-waiting in SQLite) and a pool of readers.
type DB struct {
	write *sql.DB
	read  *sql.DB
	path  string

	// Now is the clock; tests replace it.
	Now func() time.Time
}

// The page cache of each connection, in KiB (SQLite's cache_size, as a
// negative number): Open sets them and TestConnectionCacheSizes reads them
// back.
const (
	WriterCacheKiB = 2000
	ReaderCacheKiB = 2000
)

// Options tune Open.
type Options struct {
	// Synchronous is SQLite's synchronous setting: FULL (default) fsyncs the WAL on
	// every commit so an acknowledged message survives power loss, not only a crash.
	Synchronous string
}

// Open opens (creating if needed) the database file at path and applies migrations.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	// Settings live in the DSN so that every pooled connection gets them.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", opts.Synchronous)
	q.Set("_txlock", "immediate")
	// SQLite's page cache is per connection and outside Go's heap (and its
	// memory limit). The writer's holds what every commit and index step
	// touches again: with the bucketed message index that is the log's
	// tail, the newest buckets' pages and the series rows, so 2 MB does:
	// in ingest's BenchmarkCommitCost it read 150-300 bytes a message more
	// from the OS's page cache than 6 MB and cost no CPU that showed
	// (bench/README.md, issue 10, eighth round).
	q.Set("_cache_size", "-"+strconv.Itoa(WriterCacheKiB))
	// Each connection keeps its most recent statements prepared: the hot
	// queries (a device's credentials, the writer's inserts) then skip
	// SQLite's parser and planner, a third of their cost under load.
	q.Set("_stmt_cache_size", "64")
	dsn := "file:" + path + "?" + q.Encode()

	write, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)

	rq := url.Values{}
	for k, v := range q {
		rq[k] = v
	}
	rq.Set("_txlock", "deferred")
	rq.Set("_query_only", "true")
	// A reader's cache only serves one read transaction while the hub
	// ingests: in WAL mode SQLite drops a connection's whole cache when it
	// starts reading after another connection's commit. There are two
	// readers per CPU, so a large cache each would be mostly memory that
	// glibc keeps once a big query filled it (bench/README.md, issue 10,
	// fifth round).
	rq.Set("_cache_size", "-"+strconv.Itoa(ReaderCacheKiB))
	read, err := sql.Open("sqlite3", "file:"+path+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open db readers: %w", err)
	}
	n := runtime.NumCPU() * 2
	if n < 4 {
		n = 4
	}
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	d := &DB{write: write, read: read, path: path, Now: time.Now}
	if err := d.write.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	if err := migrations.Apply(ctx, d.write, migrations.SQLite, path); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes both pools.
func (d *DB) Close() error {
	rerr := d.read.Close()
	werr := d.write.Close()
	if werr != nil {
		return fmt.Errorf("close db: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("close db readers: %w", rerr)
	}
	return nil
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Ping checks that the database answers a query; /readyz uses it.
func (d *DB) Ping(ctx context.Context) error {
	var one int
	if err := d.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping db: %w", err)
	}
	return nil
}

// Writer and Reader expose the pools to the storage code of other tables in
// the file (package telemetry/sqlite), to this package's subpackages and to
// benchmarks; application code uses the typed methods. Every writer shares
// the one writer connection, so writes queue in Go and never contend.
func (d *DB) Writer() *sql.DB { return d.write }

// Reader is the read-only pool.
func (d *DB) Reader() *sql.DB { return d.read }

// translate turns driver errors into the storage package's error values.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey) {
		return storage.ErrConflict
	}
	return err
}

// FaultKind names an error of SQLite's that is the storage failing, in
// words safe to show anyone (no paths, no SQL): "disk full", "disk I/O
// error" and so on; "" for any other error. It is SQLite's naming for
// storage.NewHealth.
func FaultKind(err error) string {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull:
			return "disk full"
		case sqlite3.ErrIoErr:
			return "disk I/O error"
		case sqlite3.ErrReadonly:
			return "database is read-only"
		case sqlite3.ErrCorrupt, sqlite3.ErrNotADB:
			return "database file is damaged"
		case sqlite3.ErrCantOpen:
			return "database file cannot be opened"
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return "database is locked by another writer"
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		return "disk full"
	}
	return ""
}

// withTx runs fn in a write transaction, the wtf way: begin, defer rollback, commit.
func (d *DB) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ms and fromMS are storage.UnixMS and storage.FromUnixMS, short for this
// package's many queries.
func ms(t time.Time) int64 { return storage.UnixMS(t) }

func fromMS(v int64) time.Time { return storage.FromUnixMS(v) }

func nullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

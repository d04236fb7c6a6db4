// Package postgres is the hub's store on PostgreSQL: the records of package
// db (devices, users, sessions, API tokens, the audit log, CA certificates,
// the cloud-to-device queue, twins, MQTT sessions, settings) in the tables
// of db/migrations/postgres, through a pgx connection pool. Store
// implements app.Store and passes db/storetest; the rules of each record
// (validation, bounds, state changes) are package db's, so both stores keep
// one model.
//
// Several hubs may share one database: every read-modify-write holds the
// rows it changes (SELECT … FOR UPDATE), a device's cloud-to-device messages
// are taken with FOR UPDATE SKIP LOCKED, and migrations take turns under an
// advisory lock. The message log and time series in the same database are
// telemetry's (package telemetry/postgres).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"fieldhub/db/migrations"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Store is the hub's store in one PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	where string // the database's URL without its password, for messages

	// Now is the clock; tests replace it.
	Now func() time.Time
	// Node names the hub instance using the store in a cluster (package
	// cluster): its lease, and the cloud-to-device locks it takes.
	Node string
}

// IsURL reports whether store names a PostgreSQL database
// (postgres://… or postgresql://…).
func IsURL(store string) bool {
	u, err := url.Parse(store)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// Redact is a database URL without its password, to show in logs and errors.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Redacted()
}

// Open connects to the database at dbURL (postgres://USER:PASS@HOST/DB; the
// pool takes pgx's pool_max_conns and the like from its query) and applies
// migrations, refusing a database whose schema is newer than this binary.
func Open(ctx context.Context, dbURL string) (*Store, error) {
	where := Redact(dbURL)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		// pgx's message may quote the URL, password and all.
		return nil, fmt.Errorf("PostgreSQL URL %s is not valid; use postgres://USER:PASSWORD@HOST[:PORT]/DATABASE", where)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", where, err)
	}
	s := &Store{pool: pool, where: where, Now: time.Now}
	sqlDB := stdlib.OpenDBFromPool(pool)
	err = migrations.Apply(ctx, sqlDB, migrations.Postgres, where)
	sqlDB.Close() // leaves the pool open
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool is the connection pool, for telemetry's storage in the same
// database (package telemetry/postgres) and for benchmarks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Where is the database's URL without its password.
func (s *Store) Where() string { return s.where }

// Ping checks that the database answers a query; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.where, err)
	}
	return nil
}

// Error codes of PostgreSQL's (SQLSTATE) that this package tells apart.
const (
	uniqueViolation       = "23505"
	characterNotSupported = "22021" // a NUL or invalid UTF-8 in text
	untranslatable        = "22P05"
)

// translate turns driver errors into the storage package's error values.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case uniqueViolation:
			return storage.ErrConflict
		case characterNotSupported, untranslatable:
			return storage.Invalid("text", "text with a NUL character or invalid UTF-8 cannot be stored")
		}
	}
	return err
}

// FaultKind names an error that is PostgreSQL failing, in words safe to
// show anyone (no host names, no SQL), for storage.NewHealth; "" for any
// other error.
func FaultKind(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53100":
			return "disk full"
		case pe.Code == "53200":
			return "database out of memory"
		case pe.Code == "53300":
			return "database has too many connections"
		case pe.Code == "25006":
			return "database is read-only"
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03":
			return "database is shutting down or starting"
		case pe.Code == "58030":
			return "disk I/O error"
		case pe.Code == "XX001", pe.Code == "XX002":
			return "database file is damaged"
		case len(pe.Code) == 5 && pe.Code[:2] == "08":
			return "database connection lost"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) {
		return "database unreachable"
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "database unreachable"
	}
	return ""
}

// inTx runs fn in a transaction: begin, defer rollback, commit.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ms is storage.UnixMS, short for this package's many queries.
func ms(t time.Time) int64 { return storage.UnixMS(t) }

// rows reads every row of a query with scan.
func rows[T any](r pgx.Rows, err error, scan func(pgx.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []T
	for r.Next() {
		v, err := scan(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, r.Err()
}

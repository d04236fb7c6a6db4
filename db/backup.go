package db

import (
	"context"
	"database/sql"
	"errors"
	"fieldhub/db/migrations"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// A backup is a single SQLite file: a copy of the hub's database made with
// VACUUM INTO, plus two tables only backups have, which restore removes:
//
//	fieldhub_backup_info  (key, value)           taken_at, version, schema_version
//	fieldhub_backup_files (name, mode, content)  files kept beside the database (the TLS folder)
//
// VACUUM INTO copies in one read transaction, so the copy holds every
// commit that finished before it began; in WAL mode that reader and the
// hub's writer never wait for each other, so ingest goes on meanwhile.
// Telemetry the hub keeps in memory is not needed: its messages are in the
// copy's message log, from which the next start rebuilds it.

// BackupFile is a file kept in a backup, named relative to the data folder.
type BackupFile struct {
	Name    string
	Mode    fs.FileMode
	Content []byte
}

// Limits on the files a backup carries: the TLS folder holds a few small
// PEM files; a crafted backup must not fill the disk or memory on restore.
const (
	MaxBackupFiles    = 64
	MaxBackupFileSize = 1 << 20
)

// BackupInfo describes a backup.
type BackupInfo struct {
	TakenAt       time.Time // zero for a database file not written by WriteBackup
	Version       string    // the fieldhub version that wrote it
	SchemaVersion int
	Devices       int
	Messages      int64 // rows in the message log
	LastMessageID int64
	Files         []string
}

// WriteBackup writes a backup of the database file src, and of files, to
// dst, which must not exist or be empty. src is opened read-only: taking a
// backup never writes to the hub's database. version is recorded with it.
func WriteBackup(ctx context.Context, src, dst, version string, files []BackupFile) (BackupInfo, error) {
	if len(files) > MaxBackupFiles {
		return BackupInfo{}, fmt.Errorf("backup: %d files, at most %d", len(files), MaxBackupFiles)
	}
	for _, f := range files {
		if err := checkBackupFile(f.Name, len(f.Content)); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: %w", err)
		}
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", "10000")
	source, err := sql.Open("sqlite3", "file:"+src+"?"+q.Encode())
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer source.Close()
	takenAt := time.Now().UTC()
	if _, err := source.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: copy %s: %w", src, err)
	}

	copyDB, err := sql.Open("sqlite3", "file:"+dst+"?_busy_timeout=10000")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: open the copy: %w", err)
	}
	defer copyDB.Close()
	tx, err := copyDB.BeginTx(ctx, nil)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	defer tx.Rollback()
	schema, err := schemaVersionOf(ctx, tx)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %s: %w", src, err)
	}
	stmts := []string{
		`CREATE TABLE fieldhub_backup_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		`CREATE TABLE fieldhub_backup_files (name TEXT PRIMARY KEY, mode INTEGER NOT NULL, content BLOB NOT NULL)`,
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: %w", err)
		}
	}
	info := map[string]string{"taken_at": takenAt.Format(time.RFC3339Nano), "version": version, "schema_version": strconv.Itoa(schema)}
	for k, v := range info {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fieldhub_backup_info (key, value) VALUES (?, ?)`, k, v); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: %w", err)
		}
	}
	for _, f := range files {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fieldhub_backup_files (name, mode, content) VALUES (?, ?, ?)`,
			filepath.ToSlash(f.Name), int64(f.Mode.Perm()), f.Content); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: store %s: %w", f.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if err := integrityCheck(ctx, copyDB, "quick_check"); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: the copy fails its check: %w", err)
	}
	out, _, err := readBackup(ctx, copyDB)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if err := copyDB.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: close the copy: %w", err)
	}
	return out, nil
}

// ErrNotABackup means a file is neither a backup nor a Fieldhub database.
var ErrNotABackup = errors.New("not a Fieldhub backup or database")

// VerifyBackup checks the backup (or plain Fieldhub database file) at path
// before a restore: every page and index intact (PRAGMA integrity_check),
// a schema this binary knows, and files with safe names. It returns what
// the backup holds. It does not change the file.
func VerifyBackup(ctx context.Context, path string) (BackupInfo, []BackupFile, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	conn, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return BackupInfo{}, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer conn.Close()
	if err := integrityCheck(ctx, conn, "integrity_check"); err != nil {
		return BackupInfo{}, nil, err
	}
	info, files, err := readBackup(ctx, conn)
	if err != nil {
		return BackupInfo{}, nil, err
	}
	latest, err := migrations.Latest(migrations.SQLite)
	if err != nil {
		return BackupInfo{}, nil, err
	}
	if info.SchemaVersion > latest {
		return BackupInfo{}, nil, fmt.Errorf("%w: it is at schema version %d, this binary knows up to %d; restore it with a newer fieldhub",
			migrations.ErrSchemaTooNew, info.SchemaVersion, latest)
	}
	return info, files, nil
}

// StripBackup removes the backup's own tables from the file at path (a
// copy on its way to becoming the hub's database).
func StripBackup(ctx context.Context, path string) error {
	conn, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer conn.Close()
	for _, s := range []string{`DROP TABLE IF EXISTS fieldhub_backup_info`, `DROP TABLE IF EXISTS fieldhub_backup_files`} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("strip backup tables from %s: %w", path, err)
		}
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

type rowQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersionOf(ctx context.Context, q rowQuerier) (int, error) {
	v, err := migrations.Version(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotABackup, err)
	}
	return v, nil
}

// integrityCheck runs PRAGMA integrity_check or quick_check and turns
// anything but "ok" into an error that quotes the first problems.
func integrityCheck(ctx context.Context, conn *sql.DB, pragma string) error {
	rows, err := conn.QueryContext(ctx, `PRAGMA `+pragma+`(5)`)
	if err != nil {
		var se sqlite3.Error
		switch {
		case errors.As(err, &se) && se.Code == sqlite3.ErrNotADB:
			return fmt.Errorf("%w: %w", ErrNotABackup, err)
		case errors.As(err, &se) && se.Code == sqlite3.ErrCorrupt:
			return fmt.Errorf("damaged: %w", err)
		}
		return fmt.Errorf("%s: %w", pragma, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("%s: %w", pragma, err)
		}
		problems = append(problems, line)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", pragma, err)
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return nil
	}
	return fmt.Errorf("damaged: %s", strings.Join(problems, "; "))
}

// readBackup reads what a backup holds; a plain database has no info or
// files tables.
func readBackup(ctx context.Context, conn rowQuerier) (BackupInfo, []BackupFile, error) {
	var info BackupInfo
	var err error
	if info.SchemaVersion, err = schemaVersionOf(ctx, conn); err != nil {
		return info, nil, err
	}
	if err := conn.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM messages),
		(SELECT COALESCE(MAX(id), 0) FROM messages)`).Scan(&info.Devices, &info.Messages, &info.LastMessageID); err != nil {
		return info, nil, fmt.Errorf("%w: %w", ErrNotABackup, err)
	}
	var tables int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema
		WHERE type = 'table' AND name IN ('fieldhub_backup_info', 'fieldhub_backup_files')`).Scan(&tables); err != nil {
		return info, nil, fmt.Errorf("read backup tables: %w", err)
	}
	if tables < 2 {
		return info, nil, nil // a plain database file
	}
	rows, err := conn.QueryContext(ctx, `SELECT key, value FROM fieldhub_backup_info`)
	if err != nil {
		return info, nil, fmt.Errorf("read backup info: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return info, nil, fmt.Errorf("read backup info: %w", err)
		}
		switch k {
		case "taken_at":
			info.TakenAt, _ = time.Parse(time.RFC3339Nano, v)
		case "version":
			info.Version = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, nil, fmt.Errorf("read backup info: %w", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM fieldhub_backup_files`).Scan(&n); err != nil {
		return info, nil, fmt.Errorf("read backup files: %w", err)
	}
	if n > MaxBackupFiles {
		return info, nil, fmt.Errorf("%w: %d files, at most %d", ErrNotABackup, n, MaxBackupFiles)
	}
	// Names and sizes first: a crafted backup's oversized file is refused
	// before it is read into memory.
	rows, err = conn.QueryContext(ctx, `SELECT name, mode, length(content) FROM fieldhub_backup_files ORDER BY name`)
	if err != nil {
		return info, nil, fmt.Errorf("read backup files: %w", err)
	}
	var files []BackupFile
	for rows.Next() {
		var f BackupFile
		var mode int64
		var size int
		if err := rows.Scan(&f.Name, &mode, &size); err != nil {
			rows.Close()
			return info, nil, fmt.Errorf("read backup files: %w", err)
		}
		if err := checkBackupFile(f.Name, size); err != nil {
			rows.Close()
			return info, nil, fmt.Errorf("%w: %w", ErrNotABackup, err)
		}
		f.Mode = fs.FileMode(mode).Perm() &^ 0o022
		files = append(files, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, nil, fmt.Errorf("read backup files: %w", err)
	}
	for i := range files {
		f := &files[i]
		if err := conn.QueryRowContext(ctx, `SELECT content FROM fieldhub_backup_files WHERE name = ?`, f.Name).Scan(&f.Content); err != nil {
			return info, nil, fmt.Errorf("read backup file %s: %w", f.Name, err)
		}
		f.Name = filepath.FromSlash(f.Name)
		info.Files = append(info.Files, f.Name)
	}
	return info, files, nil
}

// checkBackupFile refuses names that would land outside the data folder
// and oversized files.
func checkBackupFile(name string, size int) error {
	if !filepath.IsLocal(filepath.FromSlash(name)) || strings.Contains(name, `\`) {
		return fmt.Errorf("file name %q is not a plain relative path", name)
	}
	if size > MaxBackupFileSize {
		return fmt.Errorf("file %s is %d bytes, at most %d", name, size, MaxBackupFileSize)
	}
	return nil
}

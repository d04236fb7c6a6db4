package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/db/migrations"
)

func TestMigrateFromEmptyAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldhub.db")
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	latest, err := migrations.Latest(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := migrations.Version(ctx, d.Reader()); err != nil || v != latest {
		t.Fatalf("schema version = %d, %v; want %d", v, err, latest)
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatalf("create device: %v", err)
	}
	d.Close()

	// Reopening applies nothing new and keeps the data.
	d, err = db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d.Close()
	if got, _ := migrations.Version(ctx, d.Reader()); got != latest {
		t.Errorf("schema version after reopen = %d, want %d", got, latest)
	}
	if _, err := d.Device(ctx, "dev1"); err != nil {
		t.Errorf("device after reopen: %v", err)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldhub.db")
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := d.Writer().ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, err = db.Open(ctx, path, db.Options{})
	if !errors.Is(err, migrations.ErrSchemaTooNew) {
		t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %q does not name the version", err)
	}
}

// TestUpgradeFromEveryVersion: a database as each earlier release left it
// (schema_migrations as they made it, holding the migrations up to that
// version, with a device in it) opens, migrates to the newest version, keeps
// its device and the recorded names, and records the new ones the same way.
func TestUpgradeFromEveryVersion(t *testing.T) {
	ctx := context.Background()
	ms, err := migrations.Load(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= len(ms); k++ {
		t.Run(fmt.Sprintf("from %04d", k), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fieldhub.db")
			oldDatabase(t, path, ms[:k])
			d, err := db.Open(ctx, path, db.Options{Synchronous: "NORMAL"})
			if err != nil {
				t.Fatalf("open a version %d database: %v", k, err)
			}
			defer d.Close()
			rows, err := d.Reader().QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var v int
				var name string
				if err := rows.Scan(&v, &name); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d %s", v, name))
			}
			var want []string
			for _, m := range ms {
				want = append(want, fmt.Sprintf("%d %s", m.Version, m.Name))
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("recorded migrations %q, want %q", got, want)
			}
			dev, err := d.Device(ctx, "old-1")
			if err != nil || dev.PrimaryKey != "key-1" || !dev.Enabled {
				t.Errorf("device of the old database = %+v, %v", dev, err)
			}
			if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "new-1"}); err != nil {
				t.Errorf("create a device after the upgrade: %v", err)
			}
		})
	}
}

// oldDatabase writes a database the way releases before package migrations
// did: their schema_migrations table, each file executed and recorded with
// ? placeholders, then a device.
// databaseBefore makes the database at path as the migrations before the
// one named upto left it (see oldDatabase) and opens it without db.Open,
// which would migrate it; the caller closes it.
func databaseBefore(t *testing.T, path, upto string) *sql.DB {
	t.Helper()
	ms, err := migrations.Load(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	var before []migrations.Migration
	for _, m := range ms {
		if m.Name < upto {
			before = append(before, m)
		}
	}
	oldDatabase(t, path, before)
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// migrateFrom makes the database at path as the migrations before upto
// left it, runs setup on it there, then opens it with db.Open, which
// migrates it the rest of the way.
func migrateFrom(t *testing.T, path, upto string, setup ...string) *db.DB {
	t.Helper()
	ctx := context.Background()
	raw := databaseBefore(t, path, upto)
	for _, q := range setup {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	d, err := db.Open(ctx, path, db.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func oldDatabase(t *testing.T, path string, ms []migrations.Migration) {
	t.Helper()
	ctx := context.Background()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, err := raw.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, m.Version, m.Name, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, enabled, connected, created_at, updated_at)
		VALUES ('old-1', '', '{}', 'key-1', 'key-2', 1, 0, 1, 1)`); err != nil {
		t.Fatal(err)
	}
}

// Migration 0017 rebuilds the message log without its foreign key and
// device index and fills message_index from it: every message indexed, the
// watermark at the newest, and the id sequence where it was, also when the
// newest messages were deleted.
func TestMessageIndexMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldhub.db")
	d := migrateFrom(t, path, "0017",
		`INSERT INTO devices (device_id, primary_key, secondary_key, enabled, connected, created_at, updated_at)
			VALUES ('old-2', 'k', 'k', 1, 0, 1, 1)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
			INSERT INTO messages (device_id, enqueued_at, auth_method, body)
			SELECT (SELECT id FROM devices WHERE device_id = IIF(i % 3 = 0, 'old-2', 'old-1')), i, 'sas-primary', CAST(i AS BLOB) FROM n`,
		`DELETE FROM messages WHERE id > 90 OR id % 10 = 5`, // the sequence stays at 100
	)
	var messages, indexed, mismatched, through, seq, fks, indexes int
	if err := d.Reader().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM message_index),
		(SELECT COUNT(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_index x WHERE x.device_id = m.device_id AND x.id = m.id)),
		(SELECT through FROM message_index_state), (SELECT seq FROM sqlite_sequence WHERE name = 'messages'),
		(SELECT COUNT(*) FROM pragma_foreign_key_list('messages')), (SELECT COUNT(*) FROM pragma_index_list('messages'))`).
		Scan(&messages, &indexed, &mismatched, &through, &seq, &fks, &indexes); err != nil {
		t.Fatal(err)
	}
	if messages != 81 || indexed != 81 || mismatched != 0 || through != 90 {
		t.Errorf("after the migration: %d messages, %d indexed, %d not indexed, watermark %d; want 81, 81, 0, 90", messages, indexed, mismatched, through)
	}
	if seq != 100 {
		t.Errorf("id sequence at %d after the rebuild, want 100", seq)
	}
	if fks != 0 || indexes != 0 {
		t.Errorf("messages has %d foreign keys and %d indexes, want none", fks, indexes)
	}
	// A device delete takes its messages with it, though no key says so.
	if err := d.DeleteDevice(ctx, "old-2"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reader().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM message_index)`).Scan(&messages, &indexed); err != nil {
		t.Fatal(err)
	}
	if messages != 54 || indexed != 54 {
		t.Errorf("after deleting old-2: %d messages, %d indexed; want old-1's 54", messages, indexed)
	}
}

// Migration 0019 rebuilds message_index keyed by bucket first and fills
// message_index_buckets from it: every entry in its id's bucket, exactly the
// device buckets that hold entries, the watermark and the unindexed tail
// untouched, and a device delete still takes every message with it.
func TestMessageIndexBucketsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldhub.db")
	// old-1 in buckets 0, 1 and 5, old-2 only in bucket 0; the watermark
	// at 5<<16+10, so the last ten ids are the unindexed tail.
	d := migrateFrom(t, path, "0019",
		`INSERT INTO devices (device_id, primary_key, secondary_key, enabled, connected, created_at, updated_at)
			VALUES ('old-2', 'k', 'k', 1, 0, 1, 1)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
			INSERT INTO messages (id, device_id, enqueued_at, auth_method, body)
			SELECT CASE WHEN i <= 20 THEN i WHEN i <= 40 THEN 65526 + i ELSE 5 * 65536 - 40 + i END,
				(SELECT id FROM devices WHERE device_id = IIF(i % 7 = 0 AND i <= 20, 'old-2', 'old-1')), i, 'sas-primary', CAST(i AS BLOB) FROM n`,
		`INSERT INTO message_index (device_id, id) SELECT device_id, id FROM messages WHERE id <= 5 * 65536 + 10 ORDER BY device_id, id`,
		`UPDATE message_index_state SET through = 5 * 65536 + 10`,
	)
	var key, pairs string
	var indexed, wrong, through, bits int
	if err := d.Reader().QueryRowContext(ctx, `SELECT
		(SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(
			(SELECT name FROM pragma_index_list('message_index') WHERE origin = 'pk')) ORDER BY seqno)),
		(SELECT COUNT(*) FROM message_index),
		(SELECT COUNT(*) FROM message_index x WHERE x.bucket <> x.id >> 16
			OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = x.id AND m.device_id = x.device_id)),
		(SELECT group_concat(p, ' ') FROM (SELECT d.device_id || ':' || b.bucket AS p
			FROM message_index_buckets b JOIN devices d ON d.id = b.device_id ORDER BY d.device_id, b.bucket)),
		(SELECT through FROM message_index_state), (SELECT bits FROM message_index_state)`).
		Scan(&key, &indexed, &wrong, &pairs, &through, &bits); err != nil {
		t.Fatal(err)
	}
	if key != "bucket,device_id,id" || bits != 16 {
		t.Errorf("message_index keyed (%s), bits %d; want (bucket,device_id,id), 16", key, bits)
	}
	if indexed != 50 || wrong != 0 || through != 5*65536+10 {
		t.Errorf("after the migration: %d indexed, %d in the wrong bucket or without a message, watermark %d; want 50, 0, %d", indexed, wrong, through, 5*65536+10)
	}
	if want := "old-1:0 old-1:1 old-1:5 old-2:0"; pairs != want {
		t.Errorf("device buckets %q, want %q", pairs, want)
	}
	for _, dev := range []string{"old-1", "old-2"} {
		if err := d.DeleteDevice(ctx, dev); err != nil {
			t.Fatal(err)
		}
	}
	var left int
	if err := d.Reader().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM message_index)
		+ (SELECT COUNT(*) FROM message_index_buckets)`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d rows left in the log and its index after deleting both devices", left)
	}
}

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

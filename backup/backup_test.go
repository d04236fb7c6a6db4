package backup_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldhub/backup"
	"fieldhub/certs"
	"fieldhub/db"
)

// newFolder makes a data folder with a database holding device id and a
// generated TLS folder, as serve leaves it.
func newFolder(t *testing.T, id string) backup.Folder {
	t.Helper()
	dir := t.TempDir()
	f := backup.Folder{DB: filepath.Join(dir, "fieldhub.db"), TLSDir: filepath.Join(dir, "tls")}
	d, err := db.Open(context.Background(), f.DB, db.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateDevice(context.Background(), db.NewDevice{DeviceID: id}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Ensure(f.TLSDir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return f
}

// devices lists the device ids in a folder's database.
func devices(t *testing.T, f backup.Folder) []string {
	t.Helper()
	d, err := db.Open(context.Background(), f.DB, db.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", f.DB, err)
	}
	defer d.Close()
	list, _, err := d.Devices(context.Background(), db.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, dev := range list {
		ids = append(ids, dev.DeviceID)
	}
	return ids
}

// alter runs SQL on a backup file, as someone crafting one would.
func alter(t *testing.T, file string, stmts ...string) {
	t.Helper()
	conn, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	src := newFolder(t, "from-backup")
	file := filepath.Join(t.TempDir(), "hub.backup")
	info, err := backup.Create(ctx, src, file, "v-test", false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "v-test" || info.Devices != 1 || info.TakenAt.IsZero() || len(info.Files) != 4 {
		t.Errorf("backup info = %+v, want version v-test, 1 device, a time and the 4 TLS files", info)
	}
	if _, err := backup.Create(ctx, src, file, "v-test", false); !errors.Is(err, backup.ErrExists) {
		t.Errorf("backup over an existing file without force: %v, want ErrExists", err)
	}
	if _, err := backup.Create(ctx, src, src.DB, "v-test", true); err == nil || !strings.Contains(err.Error(), "own database") {
		t.Errorf("backup onto the database itself: %v, want a refusal", err)
	}

	dst := newFolder(t, "already-there")
	if _, err := backup.Restore(ctx, file, dst, false); !errors.Is(err, backup.ErrExists) {
		t.Errorf("restore over a database without force: %v, want ErrExists", err)
	}
	if _, err := backup.Restore(ctx, file, dst, true); err != nil {
		t.Fatalf("restore with force: %v", err)
	}
	if got := devices(t, dst); len(got) != 1 || got[0] != "from-backup" {
		t.Errorf("restored devices = %v, want [from-backup]", got)
	}
	for _, name := range []string{certs.CAFile, certs.CAKeyFile} {
		a, _ := os.ReadFile(filepath.Join(src.TLSDir, name))
		b, _ := os.ReadFile(filepath.Join(dst.TLSDir, name))
		if string(a) != string(b) {
			t.Errorf("tls/%s was not restored", name)
		}
	}
	// The backup's own tables stay out of the hub's database, and nothing is left beside it.
	d, err := db.Open(ctx, dst.DB, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	d.Reader().QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE 'fieldhub_backup%'`).Scan(&n)
	d.Close()
	if n != 0 {
		t.Errorf("%d backup tables in the restored database, want 0", n)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst.DB))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".restoring") || strings.Contains(e.Name(), ".replaced") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestRestoreRefusesBadBackups: a damaged, foreign, too new or crafted file
// is refused before anything is replaced.
func TestRestoreRefusesBadBackups(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		spoil   func(t *testing.T, file string)
		wantErr string
	}{
		{"truncated", func(t *testing.T, file string) {
			st, _ := os.Stat(file)
			if err := os.Truncate(file, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "damaged"},
		{"not a database", func(t *testing.T, file string) {
			if err := os.WriteFile(file, []byte(strings.Repeat("not sqlite\n", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a Fieldhub backup"},
		{"another SQLite database", func(t *testing.T, file string) {
			os.Remove(file)
			alter(t, file, `CREATE TABLE notes (x)`)
		}, "not a Fieldhub backup"},
		{"newer schema", func(t *testing.T, file string) {
			alter(t, file, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
		}, "newer than this binary"},
		{"file outside the TLS folder", func(t *testing.T, file string) {
			alter(t, file, `INSERT INTO fieldhub_backup_files (name, mode, content) VALUES ('tls/../escaped', 420, 'x')`)
		}, "outside the TLS folder"},
		{"file outside the data folder", func(t *testing.T, file string) {
			alter(t, file, `INSERT INTO fieldhub_backup_files (name, mode, content) VALUES ('../escaped', 420, 'x')`)
		}, "not a plain relative path"},
		{"oversized file", func(t *testing.T, file string) {
			alter(t, file, `INSERT INTO fieldhub_backup_files (name, mode, content) VALUES ('tls/huge.pem', 420, zeroblob(2000000))`)
		}, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "hub.backup")
			if _, err := backup.Create(ctx, newFolder(t, "from-backup"), file, "v-test", false); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, file)
			dst := newFolder(t, "keep-me")
			caBefore, _ := os.ReadFile(filepath.Join(dst.TLSDir, certs.CAKeyFile))
			_, err := backup.Restore(ctx, file, dst, true)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("restore: %v, want an error containing %q", err, tt.wantErr)
			}
			if got := devices(t, dst); len(got) != 1 || got[0] != "keep-me" {
				t.Errorf("after a refused restore the devices are %v, want [keep-me]", got)
			}
			if caAfter, _ := os.ReadFile(filepath.Join(dst.TLSDir, certs.CAKeyFile)); string(caAfter) != string(caBefore) {
				t.Error("a refused restore changed the CA key")
			}
			for _, dir := range []string{filepath.Dir(dst.DB), filepath.Dir(filepath.Dir(dst.DB))} {
				if _, err := os.Stat(filepath.Join(dir, "escaped")); err == nil {
					t.Errorf("a crafted file name wrote %s", filepath.Join(dir, "escaped"))
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(dst.DB))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".restoring") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

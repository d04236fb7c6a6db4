package db

import (
	"context"
	"database/sql"
	"errors"
	"fieldhub/db/migrations"
	"fieldhub/storage"
	"path/filepath"
	"slices"
	"testing"
)

// TestUsernamesUniqueRegardlessOfCase: "Admin" and "admin" could both exist.
// Now a second spelling is storage.ErrConflict, every lookup matches any case, and
// migration 0005 renames the later of names that already collide.
func TestUsernamesUniqueRegardlessOfCase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldhub.db")

	// A database as version 4 left it, with colliding names.
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations.Load(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 4 {
			break
		}
		if _, err := raw.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"admin", "olga", "Admin", "ADMIN", "Olga"} {
		if _, err := raw.ExecContext(ctx, `INSERT INTO users (username, password_hash, role, created_at) VALUES (?, 'x', 'admin', 0)`, name); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	d, err := Open(ctx, path, Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatalf("open (migrate) with colliding names: %v", err)
	}
	defer d.Close()
	users, err := d.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if want := []string{"ADMIN-4", "Admin-3", "Olga-5", "admin", "olga"}; !slices.Equal(names, want) {
		t.Errorf("users after migration = %q, want %q", names, want)
	}
	renames, err := d.AuditEntries(ctx, AuditFilter{Action: "user.rename"})
	if err != nil {
		t.Fatal(err)
	}
	if len(renames) != 3 || renames[0].Actor != "migration" || renames[0].Target != "Olga" || renames[0].Detail != "renamed to Olga-5: an older user's name differs only in letter case" {
		t.Errorf("rename audit = %+v, want 3 entries, newest for Olga", renames)
	}

	if _, err := d.CreateUser(ctx, "OLGA", "x", RoleViewer); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("create OLGA beside olga: %v, want storage.ErrConflict", err)
	}
	u, err := d.User(ctx, "OlGa")
	if err != nil || u.Username != "olga" {
		t.Errorf("User(OlGa) = %q, %v; want olga", u.Username, err)
	}
	if err := d.SetPassword(ctx, "OLGA", "y"); err != nil {
		t.Errorf("SetPassword(OLGA): %v", err)
	}
	if err := d.DeleteUser(ctx, "ADMIN-4"); err != nil {
		t.Errorf("DeleteUser(ADMIN-4): %v", err)
	}
	if err := d.DeleteUser(ctx, "Olga"); err != nil {
		t.Errorf("DeleteUser(Olga): %v", err)
	}
	if _, err := d.User(ctx, "olga"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("olga after DeleteUser(Olga): %v, want storage.ErrNotFound", err)
	}
	if u, err := d.User(ctx, "olga-5"); err != nil || u.PasswordHash != "x" {
		t.Errorf("the renamed Olga-5 = %+v, %v; want kept with its password", u, err)
	}
}

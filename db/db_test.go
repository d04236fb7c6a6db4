package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/storage"
)

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr string
	}{
		{"dev-1", ""},
		{"a.b:c+d%e_f#g*h?i!j(k)l,m=n@o$p'q", ""},
		{strings.Repeat("x", 128), ""},
		{"", "empty"},
		{strings.Repeat("x", 129), "129 characters"},
		{"has space", `' ' at position 4`},
		{"slash/no", `'/' at position 6`},
		{"ümlaut", "position 1"},
		{".", `device id "." is not allowed`},
		{"..", `device id ".." is not allowed`},
		{"...", ""},
		{".a", ""},
	}
	for _, tt := range tests {
		err := db.ValidateDeviceID(tt.id)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateDeviceID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateDeviceID(%q) = %v, want error containing %q", tt.id, err, tt.wantErr)
		}
	}
}

func TestDeviceLifecycle(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d.Now = func() time.Time { return now }

	dev, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "pump-1", Name: "Pump", Tags: map[string]string{"site": "north"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if dev.PrimaryKey == "" || dev.PrimaryKey == dev.SecondaryKey {
		t.Errorf("keys = %q, %q; want two distinct keys", dev.PrimaryKey, dev.SecondaryKey)
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "pump-1"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate create: err = %v, want ErrConflict", err)
	}
	var inv *storage.InvalidError
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "bad id"}); !errors.As(err, &inv) {
		t.Errorf("bad id: err = %v, want InvalidError", err)
	}

	got, err := d.Device(ctx, "pump-1")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Name != "Pump" || got.Tags["site"] != "north" || !got.Enabled || !got.CreatedAt.Equal(now) {
		t.Errorf("got %+v", got)
	}
	if s := got.Status(now); s != db.StatusOffline {
		t.Errorf("status of silent device = %s, want offline", s)
	}

	off := false
	name := "Main pump"
	upd, err := d.UpdateDevice(ctx, "pump-1", db.DeviceUpdate{Name: &name, Enabled: &off, Tags: map[string]string{"site": "south"}})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if upd.Name != name || upd.Enabled || upd.Tags["site"] != "south" || upd.Status(now) != db.StatusDisabled {
		t.Errorf("updated = %+v", upd)
	}

	rot, err := d.RotateDeviceKey(ctx, "pump-1", db.SecondaryKey)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.SecondaryKey == dev.SecondaryKey || rot.PrimaryKey != dev.PrimaryKey {
		t.Errorf("rotate secondary changed the wrong key")
	}
	if _, err := d.RotateDeviceKey(ctx, "pump-1", "tertiary"); !errors.As(err, &inv) {
		t.Errorf("rotate unknown key: %v", err)
	}

	if err := d.DeleteDevice(ctx, "pump-1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := d.Device(ctx, "pump-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get deleted: err = %v, want ErrNotFound", err)
	}
	if err := d.DeleteDevice(ctx, "pump-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
}

func TestDevicesFilterAndCounts(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Now()
	for _, id := range []string{"a-1", "a-2", "b-1", "b-2", "c-1"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id, Tags: map[string]string{"group": id[:1]}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetDeviceConnected(ctx, "a-1", true); err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := d.UpdateDevice(ctx, "c-1", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		filter    db.DeviceFilter
		wantIDs   string
		wantTotal int
	}{
		{"all", db.DeviceFilter{}, "a-1 a-2 b-1 b-2 c-1", 5},
		{"text", db.DeviceFilter{Query: "b-"}, "b-1 b-2", 2},
		{"tag text", db.DeviceFilter{Query: `"group":"a"`}, "a-1 a-2", 2},
		{"online", db.DeviceFilter{Status: db.StatusOnline}, "a-1", 1},
		{"offline", db.DeviceFilter{Status: db.StatusOffline}, "a-2 b-1 b-2", 3},
		{"disabled", db.DeviceFilter{Status: db.StatusDisabled}, "c-1", 1},
		{"page", db.DeviceFilter{Limit: 2, Offset: 2}, "b-1 b-2", 5},
		{"like wildcard is literal", db.DeviceFilter{Query: "%"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, total, err := d.Devices(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, dev := range devs {
				ids = append(ids, dev.DeviceID)
			}
			if got := strings.Join(ids, " "); got != tt.wantIDs || total != tt.wantTotal {
				t.Errorf("got %q (total %d), want %q (total %d)", got, total, tt.wantIDs, tt.wantTotal)
			}
		})
	}
	// A device that hangs up is offline at once, although it was just active;
	// a later message brings it back online.
	if err := d.SetDeviceConnected(ctx, "b-2", true); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDeviceConnected(ctx, "b-2", false); err != nil {
		t.Fatal(err)
	}
	if dev, _ := d.Device(ctx, "b-2"); dev.Status(time.Now()) != db.StatusOffline {
		t.Errorf("disconnected device status = %s, want offline", dev.Status(time.Now()))
	}
	c, err := d.FleetCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (db.FleetCounts{Online: 1, Offline: 3, Disabled: 1}) {
		t.Errorf("counts = %+v", c)
	}
	_ = now
	if _, _, err := d.Devices(ctx, db.DeviceFilter{Status: "sleeping"}); err == nil {
		t.Error("unknown status filter accepted")
	}
}

func TestUsersSessionsTokens(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Now()
	d.Now = func() time.Time { return now }

	u, err := d.CreateUser(ctx, "alice", "hash1", db.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "alice", "x", db.RoleViewer); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate user: %v", err)
	}
	if _, err := d.CreateUser(ctx, "bob", "x", "root"); err == nil {
		t.Error("unknown role accepted")
	}
	if err := d.CreateSession(ctx, "secret", u.ID, "csrf", time.Hour); err != nil {
		t.Fatal(err)
	}
	s, err := d.Session(ctx, "secret")
	if err != nil || s.User.Username != "alice" || s.CSRFToken != "csrf" {
		t.Fatalf("session = %+v, %v", s, err)
	}
	if _, err := d.Session(ctx, "other"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := d.Session(ctx, "secret"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}
	if err := d.CreateSession(ctx, "s2", u.ID, "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPassword(ctx, "alice", "hash2"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Session(ctx, "s2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session survived password change: %v", err)
	}

	if _, err := d.CreateUser(ctx, "root", "h", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, "root"); err == nil {
		t.Error("deleted the last admin")
	}
	if err := d.DeleteUser(ctx, "alice"); err != nil {
		t.Errorf("delete alice: %v", err)
	}

	tok, err := d.CreateAPIToken(ctx, "ci", db.RoleViewer, "fh_abcdefghijklmnop")
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.APITokenBySecret(ctx, "fh_abcdefghijklmnop")
	if err != nil || got.ID != tok.ID || got.Role != db.RoleViewer {
		t.Fatalf("token lookup = %+v, %v", got, err)
	}
	if err := d.RevokeAPIToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.APITokenBySecret(ctx, "fh_abcdefghijklmnop"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoked token still works: %v", err)
	}
}

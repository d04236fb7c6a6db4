package db

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestOnlineSQLMatchesGo: the fleet filter and counts decide in SQL, pages
// and live streams in Go; for every case both must say the same, and what
// the case says.
func TestOnlineSQLMatchesGo(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.UnixMilli(1_800_000_000_000).UTC()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	never := time.Time{}
	tests := []struct {
		name         string
		connected    bool
		last, hungUp time.Time
		want         bool
	}{
		{"never heard from", false, never, never, false},
		{"connected, no message yet", true, never, never, true},
		{"connected, last message long ago", true, ago(time.Hour), never, true},
		{"message a moment ago", false, ago(time.Second), never, true},
		{"message just inside the window", false, ago(OnlineWindow - time.Millisecond), never, true},
		{"message exactly a window ago", false, ago(OnlineWindow), never, false},
		{"message long ago", false, ago(time.Hour), never, false},
		{"hung up after its last message", false, ago(10 * time.Second), ago(5 * time.Second), false},
		{"hung up at its last message", false, ago(5 * time.Second), ago(5 * time.Second), false},
		{"message after hanging up", false, ago(5 * time.Second), ago(10 * time.Second), true},
		{"connected again after hanging up", true, ago(10 * time.Second), ago(5 * time.Second), true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "dev" + string(rune('a'+i))
			if _, err := d.write.ExecContext(ctx, `INSERT INTO devices
				(device_id, name, tags, primary_key, secondary_key, enabled, connected, created_at, updated_at, last_activity_at, disconnected_at)
				VALUES (?, '', '{}', 'k', 'k', 1, ?, 1, 1, ?, ?)`,
				id, tt.connected, nullable(tt.last), nullable(tt.hungUp)); err != nil {
				t.Fatal(err)
			}
			var inSQL bool
			if err := d.read.QueryRowContext(ctx, `SELECT `+onlineSQL+` FROM devices WHERE device_id = ?`,
				OnlineCutoff(now), id).Scan(&inSQL); err != nil {
				t.Fatal(err)
			}
			inGo := Online(tt.connected, tt.last, tt.hungUp, now)
			dev, err := d.Device(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			byStatus := dev.Status(now) == StatusOnline
			if inSQL != tt.want || inGo != tt.want || byStatus != tt.want {
				t.Errorf("online: SQL %v, Online %v, Device.Status %v; want %v", inSQL, inGo, byStatus, tt.want)
			}
		})
	}
}

// nullable stores the zero time as NULL, as the devices table does.
func nullable(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

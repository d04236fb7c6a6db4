package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// The SQLite side of the message index that the conformance suite cannot
// see: a device with more messages than one delete batch leaves neither
// messages nor index entries behind, and retention leaves no index entry
// without its message.
func TestMessageIndexLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"big", "small"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := telemetry.Open(ctx, sqlite.New(d), telemetry.Options{
		Now:       func() time.Time { return t0.Add(time.Hour) },
		Retention: telemetry.Retention{Messages: 30 * time.Minute, Raw: -1, Minutes: -1, Hours: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// 12,000 messages of big (8,182 of them indexed: more than one delete
	// batch), one in eleven of small, an hour from first to last.
	for i := 0; i < 13200; i += 1200 {
		var recs []telemetry.Record
		for j := i; j < i+1200; j++ {
			dev := "big"
			if j%11 == 10 {
				dev = "small"
			}
			at := t0.Add(time.Duration(j) * time.Hour / 13200)
			recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: dev, EnqueuedAt: at, Body: []byte(`{"x":1}`), AuthMethod: "sas-primary"}))
		}
		if _, err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexMessages(ctx, 9000); err != nil {
		t.Fatal(err)
	}
	count := func(when string, wantMessages, wantIndexed int) {
		t.Helper()
		var messages, indexed, dangling int
		if err := d.Reader().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM message_index),
			(SELECT COUNT(*) FROM message_index x WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = x.id AND m.device_id = x.device_id))`).
			Scan(&messages, &indexed, &dangling); err != nil {
			t.Fatal(err)
		}
		if messages != wantMessages || indexed != wantIndexed || dangling != 0 {
			t.Errorf("%s: %d messages, %d indexed, %d index entries without a message; want %d, %d, 0",
				when, messages, indexed, dangling, wantMessages, wantIndexed)
		}
	}
	count("before", 13200, 9000)
	if err := d.DeleteDevice(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	count("after deleting big", 1200, 818) // small's: ids 11, 22, … of which 818 up to 9,000
	for {
		_, more, err := s.Prune(ctx, t0.Add(time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	count("after retention", 600, 218) // the newer half: ids 6,611 to 13,200, of which 218 up to 9,000
	if n, err := s.IndexMessages(ctx, 1000); err != nil || n != 600-218 {
		t.Errorf("index step after the deletes indexed %d (%v), want small's %d left", n, err, 600-218)
	}
	count("indexed", 600, 600)
}

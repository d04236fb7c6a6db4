package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// bucketFixture is a store whose message ids are forced across several of
// message_index's 65,536-id buckets (migration 0019) by moving the log's id
// sequence between appends: "busy" sends in every bucket, "old" only in the
// first, "none" never.
type bucketFixture struct {
	d   *db.DB
	s   *telemetry.Store
	t0  time.Time
	ids map[string][]int64 // each device's message ids, oldest first
}

func newBucketFixture(t *testing.T) *bucketFixture {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), db.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, id := range []string{"busy", "old", "none"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	f := &bucketFixture{d: d, t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ids: map[string][]int64{}}
	f.s, err = telemetry.Open(ctx, sqlite.New(d), telemetry.Options{
		Now:       func() time.Time { return f.t0.Add(time.Hour) },
		Retention: telemetry.Retention{Messages: 30 * time.Minute, Raw: -1, Minutes: -1, Hours: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Four batches of five, 20 minutes apart: the first in bucket 0 (old's
	// three and busy's two), the second straddling into bucket 1, the third
	// wholly in bucket 3 (bucket 2 stays empty), the fourth straddling from
	// bucket 3 into 4. A 30-minute cutoff prunes the first two.
	for i, seq := range []int64{0, 1<<16 - 3, 3<<16 - 1, 4<<16 - 2} {
		if seq > 0 {
			if _, err := d.Writer().ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'`, seq); err != nil {
				t.Fatal(err)
			}
		}
		devs := []string{"busy", "busy", "busy", "busy", "busy"}
		if i == 0 {
			devs = []string{"old", "busy", "old", "busy", "old"}
		}
		var recs []telemetry.Record
		for _, dev := range devs {
			at := f.t0.Add(time.Duration(i) * 20 * time.Minute)
			recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: dev, EnqueuedAt: at, Body: []byte(`{"x":1}`), AuthMethod: "sas-primary"}))
		}
		ids, err := f.s.Append(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		for j, id := range ids {
			f.ids[devs[j]] = append(f.ids[devs[j]], id)
		}
	}
	if got := f.ids["busy"][len(f.ids["busy"])-1]; got != 4<<16+3 {
		t.Fatalf("newest id %d, want %d: the sequence did not move as the test expects", got, 4<<16+3)
	}
	if _, err := f.s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// pages lists a device's messages page by page through the Before cursor
// and returns their ids, newest first.
func (f *bucketFixture) pages(t *testing.T, deviceID string, limit int) []int64 {
	t.Helper()
	var out []int64
	for before := int64(0); ; {
		ms, err := f.s.Messages(context.Background(), deviceID, telemetry.MessageFilter{Limit: limit, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out = append(out, m.ID)
		}
		if len(ms) < limit {
			return out
		}
		before = ms[len(ms)-1].ID
	}
}

// consistent checks what every user of the index relies on: each entry in
// its id's bucket and with its message, and message_index_buckets naming
// exactly the (device, bucket) pairs that hold entries.
func (f *bucketFixture) consistent(t *testing.T, when string) {
	t.Helper()
	var wrongBucket, dangling, missingPairs, extraPairs int
	if err := f.d.Reader().QueryRowContext(context.Background(), `SELECT
		(SELECT COUNT(*) FROM message_index WHERE bucket <> id >> (SELECT bits FROM message_index_state)),
		(SELECT COUNT(*) FROM message_index x WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = x.id AND m.device_id = x.device_id)),
		(SELECT COUNT(*) FROM (SELECT DISTINCT device_id, bucket FROM message_index EXCEPT SELECT device_id, bucket FROM message_index_buckets)),
		(SELECT COUNT(*) FROM (SELECT device_id, bucket FROM message_index_buckets EXCEPT SELECT DISTINCT device_id, bucket FROM message_index))`).
		Scan(&wrongBucket, &dangling, &missingPairs, &extraPairs); err != nil {
		t.Fatal(err)
	}
	if wrongBucket+dangling+missingPairs+extraPairs != 0 {
		t.Errorf("%s: %d entries in the wrong bucket, %d without a message, %d device buckets not listed, %d listed without entries",
			when, wrongBucket, dangling, missingPairs, extraPairs)
	}
}

func newestFirst(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// A listing pages through several buckets with the Before cursor, with the
// watermark anywhere (nothing, part or all of the log indexed), and a device
// whose messages are all in the oldest bucket is listed whole.
func TestMessageIndexBucketsListing(t *testing.T) {
	ctx := context.Background()
	f := newBucketFixture(t)
	for _, step := range []int{0, 4, 7, 100} {
		if step > 0 {
			if _, err := f.s.IndexMessages(ctx, step); err != nil {
				t.Fatal(err)
			}
		}
		f.consistent(t, "after an index step")
		for _, dev := range []string{"busy", "old", "none"} {
			for _, limit := range []int{1, 2, 3, 50} {
				if got, want := f.pages(t, dev, limit), newestFirst(f.ids[dev]); !slices.Equal(got, want) {
					t.Errorf("step %d, %s in pages of %d: %v, want %v", step, dev, limit, got, want)
				}
			}
		}
	}
	var buckets []int64
	rows, err := f.d.Reader().QueryContext(ctx, `SELECT bucket FROM message_index_buckets
		WHERE device_id = (SELECT id FROM devices WHERE device_id = 'busy') ORDER BY bucket`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		buckets = append(buckets, b)
	}
	rows.Close()
	if !slices.Equal(buckets, []int64{0, 1, 3, 4}) {
		t.Errorf("busy's buckets %v, want [0 1 3 4]", buckets)
	}
}

// Deleting a device removes its entries from every bucket it was in, and
// retention removes the index entries of the messages it deletes and the
// device buckets it empties.
func TestMessageIndexBucketsDeletes(t *testing.T) {
	ctx := context.Background()
	f := newBucketFixture(t)
	if _, err := f.s.IndexMessages(ctx, 15); err != nil { // bucket 3's batch; the newest stays in the tail
		t.Fatal(err)
	}
	if err := f.d.DeleteDevice(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	f.consistent(t, "after deleting old")
	count := func(q string) int {
		t.Helper()
		var n int
		if err := f.d.Reader().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM messages WHERE device_id NOT IN (SELECT id FROM devices)`); n != 0 {
		t.Errorf("%d messages of the deleted device left", n)
	}
	if got, want := f.pages(t, "busy", 2), newestFirst(f.ids["busy"]); !slices.Equal(got, want) {
		t.Errorf("busy after deleting old: %v, want %v", got, want)
	}
	// Retention: the messages of the first 30 minutes (bucket 0 and 1's
	// batches) go, with their entries and busy's buckets 0 and 1.
	for {
		_, more, err := f.s.Prune(ctx, f.t0.Add(time.Hour), 100) // cutoff 30 minutes
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	f.consistent(t, "after retention")
	if n := count(`SELECT COUNT(*) FROM message_index WHERE bucket < 3`); n != 0 {
		t.Errorf("%d index entries of pruned messages left", n)
	}
	if n := count(`SELECT COUNT(*) FROM message_index_buckets WHERE bucket < 3`); n != 0 {
		t.Errorf("%d device buckets of pruned messages left", n)
	}
	busy := f.ids["busy"][len(f.ids["busy"])-10:]
	if got, want := f.pages(t, "busy", 3), newestFirst(busy); !slices.Equal(got, want) {
		t.Errorf("busy after retention: %v, want %v", got, want)
	}
	if err := f.d.DeleteDevice(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	f.consistent(t, "after deleting busy")
	if n := count(`SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM message_index) + (SELECT COUNT(*) FROM message_index_buckets)`); n != 0 {
		t.Errorf("%d rows left in the log and its index after deleting every device that sent", n)
	}
	if n, err := f.s.IndexMessages(ctx, 100); err != nil || n != 0 {
		t.Errorf("index step after the deletes indexed %d (%v), want 0", n, err)
	}
}

package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// indexBenchLog is a store whose log holds prefill messages of 800 busy
// devices and one rare one (a message in 20,000), all indexed, with the
// index's bucket width bits (0: the schema's own, or a schema without
// buckets).
func indexBenchLog(b *testing.B, prefill, bits int) (*db.DB, *telemetry.Store) {
	b.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "fieldhub.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	for i := range 801 {
		id := fmt.Sprintf("sensor-%04d", i)
		if i == 800 {
			id = "rare"
		}
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "silent"}); err != nil {
		b.Fatal(err)
	}
	s, err := telemetry.Open(ctx, sqlite.New(d), telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if bits > 0 {
		if _, err := d.Writer().ExecContext(ctx, `UPDATE message_index_state SET bits = ?`, bits); err != nil {
			b.Fatal(err)
		}
	}
	appendRaw(b, d, prefill)
	for {
		n, err := s.IndexMessages(ctx, 100000)
		if err != nil {
			b.Fatal(err)
		}
		if n < 100000 {
			break
		}
	}
	return d, s
}

// appendRaw appends n messages to the log in one statement, bypassing the
// engine: the busy devices in a scattered order, the rare device at every
// 20,000th id.
func appendRaw(b *testing.B, d *db.DB, n int) {
	b.Helper()
	if _, err := d.Writer().ExecContext(context.Background(), `WITH RECURSIVE n(i) AS (
			SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0) + 1
			UNION ALL SELECT i + 1 FROM n WHERE i < COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0) + ?)
		INSERT INTO messages (id, device_id, enqueued_at, auth_method, body)
		SELECT i, IIF(i % 20000 = 0, (SELECT id FROM devices WHERE device_id = 'rare'),
			(SELECT id FROM devices WHERE device_id = printf('sensor-%04d', (i * 7919) % 800))), i, 'sas-primary', x'7b7d' FROM n`, n); err != nil {
		b.Fatal(err)
	}
}

// walFrames reads how many frames the WAL holds; truncate empties it first.
func walFrames(b *testing.B, d *db.DB, mode string) int {
	b.Helper()
	var busy, frames, done int
	if err := d.Writer().QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &frames, &done); err != nil {
		b.Fatal(err)
	}
	return frames
}

// BenchmarkIndexStep is one index step of 13,000 messages of 800 devices
// (the hub-only bench's half-rate step) on a log of a million indexed
// messages: WAL frames it wrote and its time, mean and max over b.N steps.
// The bits=N runs set the bucket width (migration 0019) before indexing.
func BenchmarkIndexStep(b *testing.B) {
	const prefill, step = 1000000, 13000
	widths := []int{0}
	probe, _ := indexBenchLog(b, 0, 0)
	var bucketed int
	if err := probe.Reader().QueryRow(`SELECT COUNT(*) FROM pragma_table_info('message_index_state') WHERE name = 'bits'`).Scan(&bucketed); err != nil {
		b.Fatal(err)
	}
	if bucketed == 1 {
		widths = []int{12, 14, 16, 18}
	}
	for _, bits := range widths {
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			ctx := context.Background()
			d, s := indexBenchLog(b, prefill, bits)
			var frames []int
			var times []time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				appendRaw(b, d, step)
				walFrames(b, d, "TRUNCATE")
				b.StartTimer()
				t := time.Now()
				if n, err := s.IndexMessages(ctx, step); err != nil || n != step {
					b.Fatalf("indexed %d (%v), want %d", n, err, step)
				}
				times = append(times, time.Since(t))
				b.StopTimer()
				frames = append(frames, walFrames(b, d, "PASSIVE"))
				b.StartTimer()
			}
			b.StopTimer()
			var sumF int
			var sumT time.Duration
			for i := range frames {
				sumF += frames[i]
				sumT += times[i]
			}
			b.ReportMetric(float64(sumF)/float64(b.N), "frames/step")
			b.ReportMetric(float64(slices.Max(frames)), "max-frames")
			b.ReportMetric(float64(sumT.Microseconds())/1000/float64(b.N), "ms/step")
			b.ReportMetric(float64(slices.Max(times).Microseconds())/1000, "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkMessageListing is a page of 50 of a busy device, of a rare one
// (a message in 20,000) and of one that never sent, on a log of a million
// indexed messages. cpu-µs/op is the process's CPU time a listing, steadier
// than the wall time on a shared machine.
func BenchmarkMessageListing(b *testing.B) {
	ctx := context.Background()
	_, s := indexBenchLog(b, 1000000, 0)
	for _, dev := range []string{"sensor-0123", "rare", "silent"} {
		b.Run(dev, func(b *testing.B) {
			cpu := cpuTime(b)
			for range b.N {
				if _, err := s.Messages(ctx, dev, telemetry.MessageFilter{Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// BenchmarkIndexStepRows is the index step's size against its cost, at the
// schema's bucket width: each run indexes 40,000 new messages of 800 devices
// (two seconds of the hub-only bench's half rate) in steps of rows, on a log
// of a million indexed messages. frames/msg is the WAL the index costs a
// message (each step rewrites the newest bucket's pages of the devices it
// touches, so smaller steps write more per message); ms/step and µs/row are
// what a step holds the writer for, on this machine, and cpu-ms/step the
// process's CPU time a step (what a loaded machine does not inflate).
func BenchmarkIndexStepRows(b *testing.B) {
	const prefill, span = 1000000, 40000
	for _, rows := range []int{1000, 2500, 5000, 10000, 20000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			ctx := context.Background()
			d, s := indexBenchLog(b, prefill, 0)
			var frames int
			var times []time.Duration
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				appendRaw(b, d, span)
				for range span / rows {
					// Emptied before each step, so that no checkpoint
					// restarts the WAL while the step's frames are counted.
					walFrames(b, d, "TRUNCATE")
					b.StartTimer()
					t, c := time.Now(), cpuTime(b)
					if n, err := s.IndexMessages(ctx, rows); err != nil || n != rows {
						b.Fatalf("indexed %d (%v), want %d", n, err, rows)
					}
					times = append(times, time.Since(t))
					cpu += cpuTime(b) - c
					b.StopTimer()
					frames += walFrames(b, d, "PASSIVE")
				}
				b.StartTimer()
			}
			b.StopTimer()
			var sum time.Duration
			for _, t := range times {
				sum += t
			}
			slices.Sort(times)
			b.ReportMetric(float64(frames)/float64(b.N*span), "frames/msg")
			b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(times)), "ms/step")
			b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(sum.Nanoseconds())/1000/float64(b.N*span), "µs/row")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(times)), "cpu-ms/step")
			b.ReportMetric(0, "ns/op")
		})
	}
}

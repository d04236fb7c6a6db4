package telemetry_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/telemetry"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sevenDays is a 1 Hz metric over 7 days: what the device page's 7-day chart shows.
const sevenDays = 7 * 24 * 3600

type chartFixture struct {
	dir       string
	err       error
	seriesB   float64 // our bytes per reading on disk
	naiveB    float64 // naive layout's bytes per reading on disk
	naivePath string
	path      string
}

// prepareChartFixture writes 604,800 readings of one metric into our layout
// (through Append and a checkpoint) and into the naive
// one-row-per-reading layout, and measures each layout's size on disk.
func prepareChartFixture(b *testing.B) *chartFixture {
	b.Helper()
	f := &chartFixture{dir: b.TempDir()}
	func() {
		ctx := context.Background()
		f.path = filepath.Join(f.dir, "ours.db")
		d, err := db.Open(ctx, f.path, db.Options{Synchronous: "OFF"})
		if err != nil {
			f.err = err
			return
		}
		defer d.Close()
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
			f.err = err
			return
		}
		store := dbtest.Telemetry(b, d)
		batch := make([]telemetry.Record, 0, 10000)
		for i := range sevenDays {
			at := t0.Add(time.Duration(i) * time.Second)
			v := 20 + float64(i%600)/100 // a sawtooth with two decimals, like a thermometer
			batch = append(batch, telemetry.Record{
				Message: telemetry.Message{DeviceID: "dev1", EnqueuedAt: at, Body: []byte("{}"), AuthMethod: "sas-primary"},
				Time:    at, Readings: []telemetry.Reading{{Metric: "temp", Value: v}}})
			if len(batch) == cap(batch) || i == sevenDays-1 {
				if _, err := store.Append(ctx, batch); err != nil {
					f.err = err
					return
				}
				batch = batch[:0]
			}
		}
		if _, err := store.Checkpoint(ctx); err != nil {
			f.err = err
			return
		}
		// Bytes of the series alone: the file with chunks minus the file without.
		w := d.Writer()
		if _, f.err = w.ExecContext(ctx, `DELETE FROM messages`); f.err != nil {
			return
		}
		withChunks, err := vacuumedSize(ctx, w)
		if err != nil {
			f.err = err
			return
		}
		// Measure on a copy so the fixture keeps its chunks.
		if _, f.err = w.ExecContext(ctx, `VACUUM INTO ?`, filepath.Join(f.dir, "copy.db")); f.err != nil {
			return
		}
		cp, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, "copy.db"))
		if err != nil {
			f.err = err
			return
		}
		defer cp.Close()
		if _, f.err = cp.ExecContext(ctx, `DELETE FROM reading_chunks`); f.err != nil {
			return
		}
		without, err := vacuumedSize(ctx, cp)
		if err != nil {
			f.err = err
			return
		}
		f.seriesB = float64(withChunks-without) / sevenDays

		f.naivePath = filepath.Join(f.dir, "naive.db")
		f.naiveB, f.err = writeNaive(ctx, f.naivePath)
	}()
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f
}

func vacuumedSize(ctx context.Context, conn *sql.DB) (int64, error) {
	if _, err := conn.ExecContext(ctx, `VACUUM`); err != nil {
		return 0, err
	}
	var pages, size int64
	if err := conn.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return 0, err
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return 0, err
	}
	return pages * size, nil
}

// writeNaive fills the naive layout (one row per reading, WITHOUT ROWID, keyed
// by series and time) with the same readings and returns its bytes per reading.
func writeNaive(ctx context.Context, path string) (float64, error) {
	conn, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=OFF")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE readings (metric_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
		PRIMARY KEY (metric_id, ts)) WITHOUT ROWID`); err != nil {
		return 0, err
	}
	empty, err := vacuumedSize(ctx, conn)
	if err != nil {
		return 0, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO readings VALUES (1, ?, ?)`)
	if err != nil {
		return 0, err
	}
	for i := range sevenDays {
		if _, err := ins.ExecContext(ctx, t0.Add(time.Duration(i)*time.Second).UnixMilli(), 20+float64(i%600)/100); err != nil {
			return 0, err
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	full, err := vacuumedSize(ctx, conn)
	if err != nil {
		return 0, err
	}
	return float64(full-empty) / sevenDays, nil
}

// BenchmarkChart7Days downsamples a 7-day 1 Hz metric (604,800 readings) to
// 1,000 buckets, beside the same query on the naive layout. It also reports
// bytes per reading on disk of both layouts.
func BenchmarkChart7Days(b *testing.B) {
	fixture := prepareChartFixture(b)
	ctx := context.Background()
	d, err := db.Open(ctx, fixture.path, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	store := dbtest.Telemetry(b, d)
	from, to := t0, t0.Add(sevenDays*time.Second-time.Millisecond)

	naive, err := sql.Open("sqlite3", "file:"+fixture.naivePath+"?_query_only=true")
	if err != nil {
		b.Fatal(err)
	}
	defer naive.Close()
	naiveQuery := func() int {
		width := (to.UnixMilli() - from.UnixMilli() + 1000) / 1000
		rows, err := naive.QueryContext(ctx, `SELECT (ts - ?1) / ?2 AS bucket, MIN(value), MAX(value), AVG(value), COUNT(*)
			FROM readings WHERE metric_id = 1 AND ts BETWEEN ?1 AND ?3 GROUP BY bucket`, from.UnixMilli(), width, to.UnixMilli())
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var bucket, count int64
			var lo, hi, avg float64
			if err := rows.Scan(&bucket, &lo, &hi, &avg, &count); err != nil {
				b.Fatal(err)
			}
			n += int(count)
		}
		return n
	}
	const baselineRuns = 3
	start := time.Now()
	for range baselineRuns {
		if n := naiveQuery(); n != sevenDays {
			b.Fatalf("naive query counted %d readings", n)
		}
	}
	naivePer := time.Since(start) / baselineRuns

	b.ResetTimer()
	for b.Loop() {
		// Raw readings, as a chart of the last 7 days reads them.
		d, err := store.ReadingsAt(ctx, "dev1", "temp", from, to, 1000, telemetry.TierRaw)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, bk := range d.Buckets {
			n += bk.Count
		}
		if n != sevenDays {
			b.Fatalf("counted %d readings, want %d", n, sevenDays)
		}
	}
	ours := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(ours.Microseconds())/1000, "ms/chart")
	b.ReportMetric(float64(naivePer.Microseconds())/1000, "naive-ms/chart")
	b.ReportMetric(float64(naivePer)/float64(ours), "x-faster-than-naive")
	b.ReportMetric(fixture.seriesB, "bytes/reading")
	b.ReportMetric(fixture.naiveB, "naive-bytes/reading")
}

// BenchmarkCheckpoint10kSeries: 10,000 dirty series (1,000 devices × 10
// metrics), checkpointed in one transaction ("full") or in steps of 256 rows
// ("steps", as the ingest pipeline does). longest-tx-ms is the longest time a
// single checkpoint transaction held the writer: what a batch of messages can
// wait behind it.
func BenchmarkCheckpoint10kSeries(b *testing.B) {
	const devices, fields = 1000, 10
	for _, bc := range []struct {
		name    string
		maxRows int
	}{{"full", 0}, {"steps", 256}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			d, err := db.Open(ctx, filepath.Join(b.TempDir(), "f.db"), db.Options{}) // synchronous=FULL, as served
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ids := make([]string, devices)
			for i := range ids {
				ids[i] = fmt.Sprintf("dev%04d", i)
				if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i]}); err != nil {
					b.Fatal(err)
				}
			}
			store := dbtest.Telemetry(b, d)
			at := t0
			round := func() { // one message per device: every series dirty
				recs := make([]telemetry.Record, 0, devices)
				for _, id := range ids {
					rs := make([]telemetry.Reading, fields)
					for f := range rs {
						rs[f] = telemetry.Reading{Metric: fmt.Sprintf("f%d", f), Value: float64(at.Unix()%1000) / 10}
					}
					recs = append(recs, telemetry.Record{
						Message: telemetry.Message{DeviceID: id, EnqueuedAt: at, Body: []byte("{}"), AuthMethod: "sas-primary"},
						Time:    at, Readings: rs})
				}
				at = at.Add(time.Second)
				if _, err := store.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			for range 50 { // partly filled open chunks, as between checkpoints
				round()
			}
			if _, err := store.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			var longest, total time.Duration
			txs := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				round()
				b.StartTimer()
				for done := false; !done; {
					start := time.Now()
					done, _, err = store.CheckpointStep(ctx, bc.maxRows)
					if err != nil {
						b.Fatal(err)
					}
					took := time.Since(start)
					longest, total, txs = max(longest, took), total+took, txs+1
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(longest.Microseconds())/1000, "longest-tx-ms")
			b.ReportMetric(float64(txs)/float64(b.N), "txs/checkpoint")
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/checkpoint")
			b.ReportMetric(0, "ns/op")
		})
	}
}

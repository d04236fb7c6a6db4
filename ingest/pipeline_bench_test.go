package ingest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/telemetry"
)

// The ingest benchmarks run the pipeline over a real database file with the
// production durability (synchronous=FULL, a commit is fsynced), fed by 1,000
// devices sending JSON bodies of 10 numeric fields. Each reports its rate
// beside a same-run baseline: the naive layout (one row per reading, WITHOUT
// ROWID, keyed by series and time) written with the same durability and the
// same batch sizes.

const (
	benchDevices = 1000
	benchFields  = 10
)

var fieldNames = [benchFields]string{"temperature", "humidity", "pressure", "battery", "rssi", "voltage", "current", "power", "co2", "noise"}

func benchBody(r *rand.Rand) []byte {
	b := []byte{'{'}
	for i, name := range fieldNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `"%s":%.2f`, name, 10+r.Float64()*40)
	}
	return append(b, '}')
}

// benchHub is a pipeline on a database with benchDevices devices.
type benchHub struct {
	db  *db.DB
	tel *telemetry.Store
	p   *ingest.Pipeline
	ids []string
}

// benchPipeline opens a database with benchDevices devices and starts a pipeline.
func benchPipeline(b *testing.B) benchHub {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	setup, err := db.Open(ctx, path, db.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, benchDevices)
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%04d", i)
		if _, err := setup.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i]}); err != nil {
			b.Fatal(err)
		}
	}
	setup.Close()
	d, err := db.Open(ctx, path, db.Options{}) // synchronous=FULL
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	tel := dbtest.Telemetry(b, d)
	p := ingest.New(tel, nil, ingest.Options{})
	b.Cleanup(func() { p.Close(context.Background()) })
	// Steady state: every device's metrics exist already (creating a metric
	// is a one-time cost per device and key).
	r := rand.New(rand.NewPCG(5, 6))
	for _, id := range ids {
		if err := p.Submit(ctx, telemetry.Message{DeviceID: id, Body: benchBody(r)}); err != nil {
			b.Fatal(err)
		}
	}
	return benchHub{db: d, tel: tel, p: p, ids: ids}
}

// naiveRowsPerSecond inserts rows into the naive layout from benchDevices ×
// benchFields series, rowsPerCommit rows per fsynced transaction, and returns
// the rate. The table first gets 100 readings per series (written quickly,
// in key order, without fsync), so that it is measured at a realistic size
// rather than while it still fits in a few pages.
func naiveRowsPerSecond(b *testing.B, rowsPerCommit int) float64 {
	b.Helper()
	if b.N < 1000 {
		return 0 // a calibration round of the benchmark, not the measured one
	}
	ctx := context.Background()
	conn, err := sql.Open("sqlite3", "file:"+filepath.Join(b.TempDir(), "naive.db")+"?_journal_mode=WAL&_synchronous=OFF&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1) // so that the PRAGMA below reaches the connection used
	exec := func(q string, args ...any) {
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	exec(`CREATE TABLE readings (device_id INTEGER NOT NULL, metric_id INTEGER NOT NULL,
		ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (device_id, metric_id, ts)) WITHOUT ROWID`)
	r := rand.New(rand.NewPCG(1, 2))
	ts := time.Now().UnixMilli()
	exec(`BEGIN`)
	for dev := range benchDevices {
		for m := range benchFields {
			for i := range 100 {
				exec(`INSERT INTO readings VALUES (?, ?, ?, ?)`, dev, m, ts-int64(100-i)*1000, r.Float64())
			}
		}
	}
	exec(`COMMIT`)
	exec(`PRAGMA synchronous = FULL`)
	write := func(rows int) {
		for done := 0; done < rows; {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			ins, err := tx.PrepareContext(ctx, `INSERT INTO readings VALUES (?, ?, ?, ?)`)
			if err != nil {
				b.Fatal(err)
			}
			// Messages interleave devices, as they arrive.
			for i := 0; i < rowsPerCommit && done < rows; i += benchFields {
				dev := r.IntN(benchDevices)
				ts++
				for m := range benchFields {
					if _, err := ins.ExecContext(ctx, dev, m, ts, r.Float64()); err != nil {
						b.Fatal(err)
					}
				}
				done += benchFields
			}
			ins.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	write(20000)
	const measured = 100000
	start := time.Now()
	write(measured)
	return measured / time.Since(start).Seconds()
}

// msgsPerCommit is the measured part's average batch size.
func msgsPerCommit(before, after ingest.Stats) float64 {
	return float64(after.Committed-before.Committed) / float64(max(after.Batches-before.Batches, 1))
}

func reportRates(b *testing.B, perCommit float64, msgs int, elapsed time.Duration, naive float64) {
	msgRate := float64(msgs) / elapsed.Seconds()
	b.ReportMetric(msgRate, "msgs/s")
	b.ReportMetric(msgRate*benchFields, "readings/s")
	b.ReportMetric(perCommit, "msgs/commit")
	if naive > 0 {
		b.ReportMetric(naive, "naive-rows/s")
		b.ReportMetric(msgRate*benchFields/naive, "x-naive")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIngestSingle: one message per Submit from many concurrent senders,
// as HTTP devices sending single messages do.
func BenchmarkIngestSingle(b *testing.B) {
	h := benchPipeline(b)
	p, ids := h.p, h.ids
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(128)
	before := p.Stats()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 7))
		for pb.Next() {
			n := seq.Add(1)
			if err := p.Submit(ctx, telemetry.Message{DeviceID: ids[n%benchDevices], AuthMethod: "sas-primary", Body: benchBody(r)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	perCommit := msgsPerCommit(before, p.Stats())
	naive := naiveRowsPerSecond(b, int(perCommit)*benchFields)
	reportRates(b, perCommit, b.N, elapsed, naive)
	reportDiskUse(b, h)
}

// reportDiskUse reports bytes per reading: of the chunks' data alone, and of
// the whole database file (message log with its JSON bodies included).
func reportDiskUse(b *testing.B, h benchHub) {
	ctx := context.Background()
	if _, err := h.tel.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	w := h.db.Writer()
	var readings, data, pages, pageSize int64
	if err := w.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0), COALESCE(SUM(length(data)), 0) FROM reading_chunks`).Scan(&readings, &data); err != nil {
		b.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	if err := w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		b.Fatal(err)
	}
	if err := w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		b.Fatal(err)
	}
	if readings > 0 {
		b.ReportMetric(float64(data)/float64(readings), "chunk-bytes/reading")
		b.ReportMetric(float64(pages*pageSize)/float64(readings), "file-bytes/reading")
	}
}

// BenchmarkIngestBatched: SDK batches of 50 messages per Submit.
func BenchmarkIngestBatched(b *testing.B) {
	const perBatch = 50
	h := benchPipeline(b)
	p, ids := h.p, h.ids
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(16)
	before := p.Stats()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 9))
		batch := make([]telemetry.Message, perBatch)
		for pb.Next() {
			dev := ids[seq.Add(1)%benchDevices]
			for i := range batch {
				batch[i] = telemetry.Message{DeviceID: dev, AuthMethod: "sas-primary", Body: benchBody(r)}
			}
			if err := p.Submit(ctx, batch...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	perCommit := msgsPerCommit(before, p.Stats())
	naive := naiveRowsPerSecond(b, int(perCommit)*benchFields)
	reportRates(b, perCommit, b.N*perBatch, elapsed, naive)
}

// BenchmarkAckLatency measures the pipeline's sustained single-message rate,
// then sends at half that rate (open loop, each message on its own goroutine)
// and reports the latency from Submit to acknowledgement. The baseline is one
// durable commit of one row: the floor of any acknowledged write.
//
// The rate is sustained, not a burst: the writer's steps (the message log's
// index every IndexEvery, checkpoints) come seconds apart, and a closed loop
// of one second missed them, so on a fast machine "half" was a rate the
// pipeline could not keep up with once they ran (the queue filled and
// refused, and a refused sender's second wait made the p99).
func BenchmarkAckLatency(b *testing.B) {
	h := benchPipeline(b)
	d, p, ids := h.db, h.p, h.ids
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	body := benchBody(r)

	// Closed loop: warmUp, then the rate over measure, which spans two
	// index steps (ingest.Options.IndexEvery, 2 s by default).
	const warmUp, measure = time.Second, 5 * time.Second
	var sent, counted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	from, until := start.Add(warmUp), start.Add(warmUp+measure)
	for g := range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(until) {
				n := sent.Add(1)
				if err := p.Submit(ctx, telemetry.Message{DeviceID: ids[(int(n)+g)%benchDevices], Body: body}); err != nil {
					b.Error(err)
					return
				}
				if done := time.Now(); done.After(from) && done.Before(until) {
					counted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	maxRate := float64(counted.Load()) / measure.Seconds()
	rate := maxRate / 2
	settle(b, p)

	b.ResetTimer()
	half := p.Stats()
	var refused atomic.Int64
	lat := make([]time.Duration, b.N)
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for i := range b.N {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = next.Add(interval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			for {
				err := p.Submit(ctx, telemetry.Message{DeviceID: ids[i%benchDevices], Body: body})
				if errors.Is(err, ingest.ErrOverloaded) {
					// A stall filled the queue (a shared machine's disk): the
					// device waits the Retry-After the endpoints send and sends
					// again, and its latency counts from the first try.
					refused.Add(1)
					time.Sleep(time.Second)
					continue
				}
				if err != nil {
					b.Error(err)
				}
				break
			}
			lat[i] = time.Since(t)
		}()
	}
	wg.Wait()
	b.StopTimer()
	logWriterStalls(b, half, p.Stats())

	// Baseline: single-row durable commits through the same writer connection.
	var floor []time.Duration
	for range 50 {
		t := time.Now()
		if err := d.SetSetting(ctx, "bench", t.String()); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(t))
	}
	slices.Sort(lat)
	slices.Sort(floor)
	pct := func(s []time.Duration, q float64) float64 {
		return float64(s[min(len(s)-1, int(float64(len(s))*q))].Microseconds()) / 1000
	}
	b.ReportMetric(maxRate, "max-msgs/s")
	b.ReportMetric(rate, "offered-msgs/s")
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(pct(floor, 0.50), "commit-p50-ms")
	b.ReportMetric(pct(lat, 0.99)/pct(floor, 0.50), "p99-x-commit")
	b.ReportMetric(float64(refused.Load()), "refused")
	b.ReportMetric(0, "ns/op")
}

// settle waits until the writer has caught up with the steps the closed
// loop left behind (the index of the messages it logged comes in steps of
// IndexStepRows, one a turn while a backlog remains): a window of 500 ms
// without a step. Otherwise the half-rate phase would measure the backlog.
func settle(b *testing.B, p *ingest.Pipeline) {
	steps := func() (n uint64) {
		for _, l := range p.Stats().StepSeconds {
			n += l.Count
		}
		return n
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		before := steps()
		time.Sleep(500 * time.Millisecond)
		if steps() == before {
			return
		}
	}
	b.Fatal("the writer's steps did not settle within a minute of the closed loop")
}

// logWriterStalls logs what the writer did between two snapshots, with how
// many commits and steps took over 25, 50 and 100 ms: a stall of the
// writer is what a tail of acknowledgement latency is made of.
func logWriterStalls(b *testing.B, from, to ingest.Stats) {
	over := func(l0, l1 ingest.Latency, limit float64) uint64 {
		for i, v := range ingest.CommitBuckets {
			if v == limit {
				return (l1.Count - l0.Count) - (l1.Buckets[i] - l0.Buckets[i])
			}
		}
		panic("no bucket at the limit")
	}
	line := func(name string, l0, l1 ingest.Latency) string {
		return fmt.Sprintf("%s %d (%d > 25 ms, %d > 50 ms, %d > 100 ms)", name, l1.Count-l0.Count,
			over(l0, l1, 0.025), over(l0, l1, 0.05), over(l0, l1, 0.1))
	}
	parts := []string{line("commit", from.CommitSeconds, to.CommitSeconds)}
	for i, name := range ingest.Steps {
		parts = append(parts, line(name, from.StepSeconds[i], to.StepSeconds[i]))
	}
	b.Logf("half rate, the writer: %s", strings.Join(parts, ", "))
}

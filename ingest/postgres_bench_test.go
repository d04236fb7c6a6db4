package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/ingest"
	"fieldhub/internal/pgtest"
	"fieldhub/telemetry"
	telpostgres "fieldhub/telemetry/postgres"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkIngestPostgres is the durable pipeline on the PostgreSQL store
// beside the SQLite store, in the same run and on the same machine: single
// messages from 128 senders, SDK batches of 50 from 16 senders (closed
// loop, msgs/s), and the acknowledgement latency of single messages sent at
// half the store's own single-message rate (open loop, p50/p99; a message
// refused because the queue was full counts as refused, not as a latency). Both
// stores have their production durability: SQLite synchronous=FULL, and a
// local PostgreSQL 15 with fsync and synchronous_commit on. pg-x-sqlite is
// PostgreSQL's figure over SQLite's.
func BenchmarkIngestPostgres(b *testing.B) {
	const phase, rounds = 2 * time.Second, 3
	srv := pgtest.Start(b, pgtest.Options{Fsync: true})
	pgHub, pool := postgresPipeline(b, srv.Database(b))
	stores := [2]benchHub{benchPipeline(b), pgHub}
	cost := newPGCost(b, pool)
	b.ResetTimer()
	for range b.N {
		// Each figure is the median of rounds, the two stores measured one
		// right after the other in every round, so that a busy moment of a
		// shared machine does not fall on one store only.
		var single, batched, p50, p99 [2][]float64
		var refused [2]int
		var walPerMsg, serverPerMsg, hubPerMsg, singleWAL, singleServer []float64
		for round := range rounds {
			for i, h := range stores {
				before := cost.at(b)
				var sent int
				single[i] = append(single[i], closedLoopN(b, h.p, h.ids, 128, 1, phase, &sent))
				if i == 1 {
					after := cost.at(b)
					singleWAL = append(singleWAL, float64(after.wal-before.wal)/float64(sent))
					singleServer = append(singleServer, float64((after.server-before.server).Microseconds())/float64(sent))
					if round == 0 {
						if s := cost.walStats(before, after, "single"); s != "" {
							b.Logf("WAL of a single-message phase, %d messages: %s", sent, s)
						}
					}
				}
			}
			for i, h := range stores {
				before := cost.at(b)
				var sent int
				batched[i] = append(batched[i], closedLoopN(b, h.p, h.ids, 16, 50, phase, &sent))
				if i == 1 {
					after := cost.at(b)
					n := float64(sent)
					walPerMsg = append(walPerMsg, float64(after.wal-before.wal)/n)
					serverPerMsg = append(serverPerMsg, float64((after.server-before.server).Microseconds())/n)
					hubPerMsg = append(hubPerMsg, float64((after.hub-before.hub).Microseconds())/n)
					if round == 0 {
						if s := cost.walStats(before, after, "batched"); s != "" {
							b.Logf("WAL of a batched phase, %d messages:\n%s", sent, s)
						}
					}
				}
			}
			for i, h := range stores {
				l50, l99, n := openLoop(b, h.p, h.ids, median(single[i])/2, phase)
				p50[i], p99[i], refused[i] = append(p50[i], l50), append(p99[i], l99), refused[i]+n
			}
		}
		const sq, pg = 0, 1
		b.ReportMetric(median(single[sq]), "sqlite-single-msgs/s")
		b.ReportMetric(median(single[pg]), "pg-single-msgs/s")
		b.ReportMetric(median(single[pg])/median(single[sq]), "pg-x-sqlite-single")
		b.ReportMetric(median(batched[sq]), "sqlite-batched-msgs/s")
		b.ReportMetric(median(batched[pg]), "pg-batched-msgs/s")
		b.ReportMetric(median(batched[pg])/median(batched[sq]), "pg-x-sqlite-batched")
		b.ReportMetric(median(singleWAL), "pg-single-wal-B/msg")
		b.ReportMetric(median(singleServer), "pg-single-server-cpu-us/msg")
		b.ReportMetric(median(walPerMsg), "pg-batched-wal-B/msg")
		b.ReportMetric(median(serverPerMsg), "pg-batched-server-cpu-us/msg")
		b.ReportMetric(median(hubPerMsg), "pg-batched-hub-cpu-us/msg")
		b.ReportMetric(median(p99[sq]), "sqlite-ack-p99-ms")
		b.ReportMetric(median(p50[pg]), "pg-ack-p50-ms")
		b.ReportMetric(median(p99[pg]), "pg-ack-p99-ms")
		b.ReportMetric(float64(refused[sq]), "sqlite-refused")
		b.ReportMetric(float64(refused[pg]), "pg-refused")
		b.ReportMetric(0, "ns/op")
	}
}

// median is the middle of vs.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

// postgresPipeline is benchPipeline on the PostgreSQL database at url.
func postgresPipeline(b *testing.B, url string) (benchHub, *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	d, err := dbpostgres.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	ids := make([]string, benchDevices)
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%04d", i)
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i]}); err != nil {
			b.Fatal(err)
		}
	}
	st, err := telpostgres.New(ctx, d.Pool(), "")
	if err != nil {
		b.Fatal(err)
	}
	tel, err := telemetry.Open(ctx, st, telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := ingest.New(tel, nil, ingest.Options{})
	b.Cleanup(func() { p.Close(context.Background()) })
	r := rand.New(rand.NewPCG(5, 6))
	for _, id := range ids {
		if err := p.Submit(ctx, telemetry.Message{DeviceID: id, Body: benchBody(r)}); err != nil {
			b.Fatal(err)
		}
	}
	return benchHub{tel: tel, p: p, ids: ids}, d.Pool()
}

// closedLoop submits from senders goroutines, perSubmit messages a Submit,
// for d, and returns the messages acknowledged a second.
func closedLoop(b *testing.B, p *ingest.Pipeline, ids []string, senders, perSubmit int, d time.Duration) float64 {
	var sent int
	return closedLoopN(b, p, ids, senders, perSubmit, d, &sent)
}

// closedLoopN is closedLoop that also says how many messages were acknowledged.
func closedLoopN(b *testing.B, p *ingest.Pipeline, ids []string, senders, perSubmit int, d time.Duration, acked *int) float64 {
	ctx := context.Background()
	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 11))
			batch := make([]telemetry.Message, perSubmit)
			for time.Since(start) < d {
				dev := ids[(int(sent.Load())+g)%len(ids)]
				for i := range batch {
					batch[i] = telemetry.Message{DeviceID: dev, AuthMethod: "sas-primary", Body: benchBody(r)}
				}
				if err := p.Submit(ctx, batch...); err != nil {
					b.Error(err)
					return
				}
				sent.Add(int64(perSubmit))
			}
		}()
	}
	wg.Wait()
	*acked = int(sent.Load())
	return float64(sent.Load()) / time.Since(start).Seconds()
}

// openLoop sends single messages at rate for d, each on its own goroutine,
// and returns the p50 and p99 of Submit's latency in milliseconds and how
// many were refused (ingest.ErrOverloaded: the device would get a 503 and
// retry) when the store fell behind.
func openLoop(b *testing.B, p *ingest.Pipeline, ids []string, rate float64, d time.Duration) (p50, p99 float64, refused int) {
	ctx := context.Background()
	body := benchBody(rand.New(rand.NewPCG(3, 4)))
	n := int(rate * d.Seconds())
	lat := make([]time.Duration, n)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	var overloaded atomic.Int64
	next := time.Now()
	for i := range n {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = next.Add(interval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			err := p.Submit(ctx, telemetry.Message{DeviceID: ids[i%len(ids)], Body: body})
			lat[i] = time.Since(t)
			if errors.Is(err, ingest.ErrOverloaded) {
				overloaded.Add(1)
			} else if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*q))].Microseconds()) / 1000
	}
	return pct(0.50), pct(0.99), int(overloaded.Load())
}

// BenchmarkIngestPostgresBatched is BenchmarkIngestPostgres's SDK-batch
// phase alone, on the PostgreSQL store only (FIELDHUB_PG_ROUNDS phases of
// 2 s, default 5): what one batched message costs the hub and the server in
// CPU time and WAL bytes, figures that a loaded machine does not move the
// way it moves rates. For profiling the ingest path (-cpuprofile) and for
// before/after comparisons of it.
func BenchmarkIngestPostgresBatched(b *testing.B) {
	const phase = 2 * time.Second
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("FIELDHUB_PG_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	srv := pgtest.Start(b, pgtest.Options{Fsync: true})
	h, pool := postgresPipeline(b, srv.Database(b))
	cost := newPGCost(b, pool)
	b.ResetTimer()
	for range b.N {
		var rate, wal, server, backends, hub []float64
		for round := range rounds {
			before := cost.at(b)
			var sent int
			rate = append(rate, closedLoopN(b, h.p, h.ids, 16, 50, phase, &sent))
			after := cost.at(b)
			n := float64(sent)
			wal = append(wal, float64(after.wal-before.wal)/n)
			server = append(server, float64((after.server-before.server).Microseconds())/n)
			backends = append(backends, float64((after.backends-before.backends).Microseconds())/n)
			hub = append(hub, float64((after.hub-before.hub).Microseconds())/n)
			if round == 0 {
				if s := cost.walStats(before, after, "batched"); s != "" {
					b.Logf("WAL of a batched phase, %d messages:\n%s", sent, s)
				}
			}
		}
		b.ReportMetric(median(rate), "msgs/s")
		b.ReportMetric(median(wal), "wal-B/msg")
		b.ReportMetric(median(server), "server-cpu-us/msg")
		b.ReportMetric(median(backends), "backend-cpu-us/msg")
		b.ReportMetric(median(hub), "hub-cpu-us/msg")
		b.ReportMetric(0, "ns/op")
	}
}

package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fieldhub/internal/pgtest"
	"fieldhub/telemetry"
)

// BenchmarkReadingsOtherNodesTail is the cost of reading another
// instance's readings that are not checkpointed yet: instance B charts an
// hour of a metric (60 points) whose newest tail messages instance A logged
// and holds in memory (a 1 Hz device's 30 s, the checkpoint interval, and a
// 50 Hz device's), against the same query once A has checkpointed them,
// in the same run. µs/query of each and the ratio.
func BenchmarkReadingsOtherNodesTail(b *testing.B) {
	srv := pgtest.Start(b, pgtest.Options{})
	for _, tail := range []int{30, 1500} {
		b.Run(fmt.Sprintf("tail=%d", tail), func(b *testing.B) {
			ctx := context.Background()
			t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			_, open := nodesOn(b, srv.Database(b), t0, "dev")
			_, a := open("a")
			_, other := open("b")
			// An hour before the tail, checkpointed: what a chart reads anyway.
			step := 30 * time.Second / time.Duration(tail)
			var recs []telemetry.Record
			for at := t0; at.Before(t0.Add(time.Hour - 30*time.Second)); at = at.Add(time.Second) {
				recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: "dev", AuthMethod: "sas-primary",
					Body: fmt.Appendf(nil, `{"temp":%d.5,"hum":40}`, at.Second()), EnqueuedAt: at}))
			}
			if _, err := a.Append(ctx, recs); err != nil {
				b.Fatal(err)
			}
			if _, err := a.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
			for i := range tail {
				at := t0.Add(time.Hour - 30*time.Second + time.Duration(i)*step)
				recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: "dev", AuthMethod: "sas-primary",
					Body: fmt.Appendf(nil, `{"temp":%d.5,"hum":40}`, i%60), EnqueuedAt: at}))
			}
			if _, err := a.Append(ctx, recs); err != nil {
				b.Fatal(err)
			}
			query := func() time.Duration {
				// Warmed up first: the statements prepared, their plans settled.
				var start time.Time
				for i := range b.N + 10 {
					if i == 10 {
						start = time.Now()
					}
					ds, err := other.Readings(ctx, "dev", "temp", t0, t0.Add(time.Hour), 60)
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for _, bk := range ds.Buckets {
						n += bk.Count
					}
					if want := 3600 - 30 + tail; n != want {
						b.Fatalf("charted %d readings, want %d", n, want)
					}
				}
				return time.Since(start) / time.Duration(b.N)
			}
			b.ResetTimer()
			withTail := query()
			if _, err := a.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			checkpointed := query()
			b.ReportMetric(float64(withTail.Microseconds()), "tail-us/query")
			b.ReportMetric(float64(checkpointed.Microseconds()), "checkpointed-us/query")
			b.ReportMetric(float64(withTail)/float64(checkpointed), "tail-x-checkpointed")
			b.ReportMetric(0, "ns/op")
		})
	}
}

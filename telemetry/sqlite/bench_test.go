package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// BenchmarkAppend is the ingest writer's own cost: Store.Append of group
// commits of 250 single messages (10 numeric fields, 1,000 devices whose
// metrics exist) on a real file with the hub's durability. cpu-µs/msg is
// the process's CPU time per message; allocs/op are per message too. On a
// busy machine, compare instruction counts instead (bench/README.md):
// callgrind's totals of two runs with different -benchtime differ by the
// writer's work alone.
func BenchmarkAppend(b *testing.B) {
	const devices, perCommit = 1000, 250
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "fieldhub.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%04d", i)
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i]}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := telemetry.Open(ctx, sqlite.New(d), telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// A pool of records, reused batch after batch with new times, so that
	// the set-up's cost does not grow with b.N (callgrind's instruction
	// counts of two runs then differ by the writer's work alone).
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	pool := make([]telemetry.Record, 2*devices)
	for i := range pool {
		body := []byte{'{'}
		for f, name := range [...]string{"temperature", "humidity", "pressure", "battery", "rssi", "voltage", "current", "power", "co2", "noise"} {
			if f > 0 {
				body = append(body, ',')
			}
			body = fmt.Appendf(body, `"%s":%.2f`, name, 10+r.Float64()*40)
		}
		body = append(body, '}')
		pool[i] = telemetry.NewRecord(telemetry.Message{DeviceID: ids[i%devices], AuthMethod: "sas-primary", Body: body, EnqueuedAt: now})
	}
	if _, err := s.Append(ctx, pool[:devices]); err != nil { // every metric exists
		b.Fatal(err)
	}
	batch := make([]telemetry.Record, perCommit)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for done := 0; done < b.N; done += perCommit {
		batch = batch[:min(perCommit, b.N-done)]
		for i := range batch {
			batch[i] = pool[(done+i)%len(pool)]
			batch[i].Time = now.Add(time.Duration(done+i) * time.Millisecond)
			batch[i].Message.EnqueuedAt = batch[i].Time
		}
		if _, err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()*1e6/float64(b.N), "cpu-µs/msg")
}

// cpuTime is the CPU time (user and system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

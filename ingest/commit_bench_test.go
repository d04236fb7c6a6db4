package ingest_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fieldhub/telemetry"
)

// BenchmarkCommitCost is what a group commit costs the writer's process
// when 1,000 devices each have one message in flight, as MQTT devices
// waiting for their PUBACK do: bytes written per commit (/proc/self/io
// wchar: the WAL, SQLite's checkpoints into the database file, the index
// steps), how often SQLite's own checkpoint ran (the WAL header's
// checkpoint sequence), CPU per message (getrusage) and heap allocations
// per message (the senders' included), over 8 s after an 8 s prefill
// that gives the log and its indexes their steady size. Judged by bytes and
// CPU per message, it holds on a shared machine where rates do not
// (bench/README.md, issue 10, perf3 and the fourth round). Run it alone:
//
//	go test -run '^$' -bench '^BenchmarkCommitCost$' -benchtime 1x ./ingest/
func BenchmarkCommitCost(b *testing.B) {
	if testing.Short() {
		b.Skip("16 s of load")
	}
	const prefill, measure = 8 * time.Second, 8 * time.Second
	h := benchPipeline(b)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, id := range h.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				if err := h.p.Submit(ctx, telemetry.Message{DeviceID: id, AuthMethod: "sas-primary", Body: benchBody(r)}); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(prefill)
	w0, r0, cpu0, st0, ck0, a0 := procIO(b, "wchar"), procIO(b, "rchar"), processCPU(b), h.p.Stats(), walResets(b, h.db.Path()), mallocs()
	b.ResetTimer()
	time.Sleep(measure)
	b.StopTimer()
	w1, r1, cpu1, st1, ck1, a1 := procIO(b, "wchar"), procIO(b, "rchar"), processCPU(b), h.p.Stats(), walResets(b, h.db.Path()), mallocs()
	msgs, commits := float64(st1.Committed-st0.Committed), float64(max(st1.Batches-st0.Batches, 1))
	b.ReportMetric(float64(w1-w0)/commits/1e6, "MB/commit")
	b.ReportMetric(float64(w1-w0)/msgs, "bytes/msg")
	// Reads are SQLite's page cache misses (and the WAL-index): what a
	// smaller writer cache would cost shows here first, whatever the load.
	b.ReportMetric(float64(r1-r0)/msgs, "read-bytes/msg")
	b.ReportMetric(msgs/commits, "msgs/commit")
	b.ReportMetric((cpu1-cpu0).Seconds()*1e6/msgs, "cpu-µs/msg")
	b.ReportMetric(float64(ck1-ck0)/commits, "walresets/commit")
	b.ReportMetric(float64(a1-a0)/msgs, "allocs/msg")
	b.ReportMetric(msgs/measure.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// mallocs is how many heap objects this process has allocated so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// walResets reads the checkpoint sequence number of the database's WAL
// header (bytes 12 to 15, big-endian): SQLite adds one each time it starts
// the log over after a checkpoint copied all of it into the database file,
// so the difference of two readings counts SQLite's completed checkpoints.
func walResets(b *testing.B, path string) uint32 {
	f, err := os.Open(path + "-wal")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		b.Fatal(err)
	}
	return binary.BigEndian.Uint32(hdr[12:])
}

// procIO is a counter of /proc/self/io so far: wchar, the bytes this
// process has passed to write calls, or rchar, those read.
func procIO(b *testing.B, counter string) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), counter+": "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/self/io", counter)
	return 0
}

// processCPU is the CPU time (user and system) this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/registry"
)

// idleDevices is how many idle devices BenchmarkIdleConnections holds.
const idleDevices = 10_000

// BenchmarkIdleConnections connects 10,000 devices over TLS from a load
// generator process (see runLoadgen) and reports the broker process's
// resident memory while they sit idle. b.N is ignored: run it with
// -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(env.dir, "fieldhub.db"), db.Options{Synchronous: "NORMAL"})
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups, not defers, so that they run after the load generator's
	// (registered later) has disconnected the devices.
	b.Cleanup(func() { store.Close() })
	br, err := New(Config{
		Addr:    "127.0.0.1:0",
		TLS:     &tls.Config{Certificates: []tls.Certificate{env.cert}},
		Store:   store,
		Devices: registry.New(registry.Config{Store: store, Audit: store}),
		Ingest:  discardIngester{},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	host := "localhost:" + br.Addr()[strings.LastIndexByte(br.Addr(), ':')+1:]

	spec := env.loadSpec(br.Addr())
	spec.DialConcurrency = 64
	for i := range idleDevices {
		dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("idle%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		spec.Devices = append(spec.Devices, deviceLogin(b, host, dev))
	}
	runtime.GC()
	before := rssMB()

	// The devices stay connected, idle, until the benchmark ends.
	startLoadgen(b, env.dir, spec)
	// Let presence records finish, then measure a settled heap.
	for len(br.presence) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	runtime.GC()
	debug.FreeOSMemory()
	after := rssMB()
	if path := os.Getenv("FIELDHUB_IDLE_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	br.mu.Lock()
	n := len(br.byDevice)
	br.mu.Unlock()
	b.ReportMetric(float64(n), "connected")
	b.ReportMetric(after, "rss-MB")
	b.ReportMetric((after-before)*1024/idleDevices, "KB/connection")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}

// rssMB is the process's current resident set (VmRSS), in MB.
func rssMB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

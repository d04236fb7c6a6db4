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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/netlimit"
	"fieldhub/registry"
)

// The idle-connection benchmark's shape (issue 11: 100,000 idle MQTT/TLS
// devices on one instance in at most 3 GB).
const (
	// idleTarget is the fleet the issue asks one instance to hold.
	idleTarget = 100_000
	// idlePerProcess is how many devices one load generator process holds:
	// well under a process's file limit, and one source address each.
	idlePerProcess = 5_000
	// idleFDReserve is what the broker process keeps of its file limit
	// for what is not a device connection: the database, the load
	// generators' pipes, the listener.
	idleFDReserve = 1_000
)

// idleSteps returns the fleet sizes BenchmarkIdleConnections measures at:
// 5,000, 10,000 and the largest it can hold, idleTarget when the file
// limit allows, else the largest round thousand below the limit. maxEnv,
// when above 0, caps the largest (a quick run).
func idleSteps(fileLimit, maxEnv int) []int {
	most := min(idleTarget, (fileLimit-idleFDReserve)/1000*1000)
	if maxEnv > 0 {
		most = min(most, maxEnv)
	}
	var steps []int
	for _, n := range []int{5_000, 10_000, most} {
		if n > 0 && n <= most && !slices.Contains(steps, n) {
			steps = append(steps, n)
		}
	}
	return steps
}

func TestIdleSteps(t *testing.T) {
	for _, tt := range []struct {
		limit, maxEnv int
		want          []int
	}{
		{20_000, 0, []int{5_000, 10_000, 19_000}},
		{1_048_576, 0, []int{5_000, 10_000, 100_000}},
		{101_000, 0, []int{5_000, 10_000, 100_000}},
		{100_999, 0, []int{5_000, 10_000, 99_000}},
		{20_000, 2_000, []int{2_000}},
		{8_000, 0, []int{5_000, 7_000}},
	} {
		if got := idleSteps(tt.limit, tt.maxEnv); !slices.Equal(got, tt.want) {
			t.Errorf("idleSteps(%d, %d) = %v, want %v", tt.limit, tt.maxEnv, got, tt.want)
		}
	}
}

// BenchmarkIdleConnections connects idle devices over TLS (clean=false,
// keep-alive 180 s, SAS tokens) in steps of 5,000, 10,000 and as many as
// the process's file limit allows (100,000 when it does), and reports the
// broker process's resident memory at each step once the connections have
// settled, the memory per connection (the slope between the first and the
// last step) and the time the devices took to connect. When the file limit
// keeps the fleet below 100,000, the RSS at 100,000 is a projection along
// that slope, and reported as one (projected-rss-MB-at-100000, beside
// file-limit); measured-rss-MB-at-100000 appears only when 100,000 devices
// really were connected.
//
// The devices are load generator processes of idlePerProcess devices
// each (see runLoadgen), each dialing from its own loopback address
// (127.0.0.2, 127.0.0.3, …), so that neither a process's file limit nor a
// source address's ephemeral ports bound the fleet. The broker runs with a
// total cap of the largest step and a per-source cap of idlePerProcess, as
// --mqtt-max-conns and --mqtt-max-conns-per-ip would set them.
//
// FIELDHUB_IDLE_MAX caps the fleet (a quick run);
// FIELDHUB_IDLE_HEAPPROFILE names a file for a heap profile at the last
// step. b.N is ignored: run it with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	fileLimit := raiseFileLimit(b)
	maxEnv, _ := strconv.Atoi(os.Getenv("FIELDHUB_IDLE_MAX"))
	steps := idleSteps(fileLimit, maxEnv)
	if len(steps) == 0 {
		b.Skipf("the file limit of %d leaves no room for idle connections", fileLimit)
	}
	most := steps[len(steps)-1]

	env := newBenchEnv(b)
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(env.dir, "fieldhub.db"), db.Options{Synchronous: "NORMAL"})
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups, not defers, so that they run after the load generators'
	// (registered later) have disconnected the devices.
	b.Cleanup(func() { store.Close() })
	br, err := New(Config{
		Addr:    "127.0.0.1:0",
		TLS:     &tls.Config{Certificates: []tls.Certificate{env.cert}},
		Store:   store,
		Devices: registry.New(registry.Config{Store: store, Audit: store}),
		Ingest:  discardIngester{},
		Logger:  slog.New(slog.DiscardHandler),
		Limits:  netlimit.Limits{Total: most, PerSource: idlePerProcess},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	host := "localhost:" + br.Addr()[strings.LastIndexByte(br.Addr(), ':')+1:]

	before := settledRSS(br)

	var (
		connected   int
		connectTime time.Duration
		rss         = map[int]float64{}
		processes   int
	)
	var unforced float64
	for _, n := range steps {
		// The step's devices, idlePerProcess to a process. Their logins are
		// made here, so that the benchmark holds none of them while
		// measuring.
		var specs []loadgenSpec
		for lo := connected; lo < n; lo += idlePerProcess {
			spec := env.loadSpec(br.Addr())
			spec.DialConcurrency = 64
			spec.SourceIP = fmt.Sprintf("127.0.0.%d", 2+processes)
			for i := lo; i < min(n, lo+idlePerProcess); i++ {
				dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("idle%06d", i)})
				if err != nil {
					b.Fatal(err)
				}
				spec.Devices = append(spec.Devices, deviceLogin(b, host, dev))
			}
			specs = append(specs, spec)
			processes++
		}
		// The processes connect at once; the devices stay connected until
		// the benchmark ends.
		start := time.Now()
		var gens []*loadgen
		for _, spec := range specs {
			gens = append(gens, launchLoadgen(b, env.dir, spec))
		}
		for _, g := range gens {
			g.await(b, "ready")
		}
		connectTime += time.Since(start)
		connected = n
		specs = nil
		unforced = rssMB() // as the burst left it, before any forced collection
		rss[n] = settledRSS(br)
		b.Logf("%d idle devices: RSS %.0f MB, connected in %.1f s so far", n, rss[n], connectTime.Seconds())
	}
	if path := os.Getenv("FIELDHUB_IDLE_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	br.mu.Lock()
	held := len(br.byDevice)
	br.mu.Unlock()
	if held != most {
		b.Fatalf("the broker holds %d connections, want %d", held, most)
	}

	for _, n := range steps {
		b.ReportMetric(rss[n], fmt.Sprintf("rss-MB-at-%d", n))
	}
	b.ReportMetric(rss[most], "rss-MB-at-max")
	// Per connection: the slope between the first and the last step, which
	// leaves out what the process costs without devices; with one step,
	// the growth from no devices.
	first := steps[0]
	perConn := (rss[most] - before) / float64(most)
	if most > first {
		perConn = (rss[most] - rss[first]) / float64(most-first)
	}
	b.ReportMetric(perConn*1024, "KB/connection")
	if most == idleTarget {
		b.ReportMetric(rss[most], fmt.Sprintf("measured-rss-MB-at-%d", idleTarget))
	} else {
		b.ReportMetric(rss[most]+perConn*float64(idleTarget-most), fmt.Sprintf("projected-rss-MB-at-%d", idleTarget))
	}
	if n := 10_000; rss[n] > 0 {
		b.ReportMetric(rss[n], "rss-MB") // the figure of issue 5: 10,000 idle connections
	}
	b.ReportMetric(float64(most), "connected")
	b.ReportMetric(float64(fileLimit), "file-limit")
	b.ReportMetric(before, "rss-MB-at-0")
	b.ReportMetric(unforced, "unsettled-rss-MB")
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
	b.ReportMetric(connectTime.Seconds(), "connect-s")
	b.ReportMetric(float64(most)/connectTime.Seconds(), "connects/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	b.ReportMetric(float64(ms.StackInuse)/(1<<20), "stack-inuse-MB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}

// settledRSS waits for the connections' presence records, collects the
// garbage and returns the process's resident set in MB: the memory the
// connections hold, not what the burst of connecting left behind (which
// unsettled-rss-MB and peak-rss-MB show). A running hub gets there by
// itself within minutes: the runtime collects at least every 2 minutes,
// each collection halves the stacks of idle goroutines that use less than
// a quarter of theirs, and the scavenger returns free pages to the system.
func settledRSS(br *Broker) float64 {
	for len(br.presence) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	runtime.GC()
	debug.FreeOSMemory()
	return rssMB()
}

// raiseFileLimit raises the process's soft file limit to its hard limit,
// as serve does (app.RaiseFileLimit), and returns it.
func raiseFileLimit(b *testing.B) int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		b.Fatalf("read the file limit: %v", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			b.Fatalf("raise the file limit to %d: %v", r.Max, err)
		}
	}
	return int(min(r.Cur, 1<<31-1))
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

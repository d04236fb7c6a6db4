package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/auth"
	"fieldhub/certs"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/registry"
)

// benchDevices is how many devices publish at once.
const benchDevices = 1000

// bareResult is the baseline the Fieldhub run compares itself with.
var bareResult struct {
	msgsPerSec, p50, p99 float64
}

// BenchmarkIngest measures QoS 1 telemetry from 1,000 concurrent devices
// over TLS, each a JSON body of 10 numeric fields, one message in flight
// per device (16 in the last two runs): on bare mochi (no hooks, no
// storage) and on Fieldhub (authentication, ACL, durable commit before
// PUBACK). Each run
// sends at least 100,000 messages. The devices are a load generator
// process, the same in every run (see runLoadgen), and the device answering
// the direct methods the benchmark calls during the load is a process of
// its own, so peak-rss-MB, the latencies and B/op are the broker process's;
// loadgen-rss-MB is the generator's.
func BenchmarkIngest(b *testing.B) {
	runBare := func(b *testing.B, inFlight int) loadResult {
		env := newBenchEnv(b)
		addr := env.startBare(b)
		spec := env.loadSpec(addr)
		for i := range benchDevices {
			spec.Devices = append(spec.Devices, loadgenDevice{ID: fmt.Sprintf("dev%04d", i), Username: "user", Password: "pass"})
		}
		spec.PerDevice, spec.Interval = loadShape(b.N, 0)
		spec.InFlight = inFlight
		gen := startLoadgen(b, env.dir, spec)
		settle()
		gen.begin(b)
		cpu := processCPU()
		return reportLoad(b, gen.result(b), cpu)
	}
	b.Run("bare-mochi", func(b *testing.B) {
		r := runBare(b, 1)
		bareResult.msgsPerSec, bareResult.p50, bareResult.p99 = r.msgsPerSec, r.p50, r.p99
	})
	var fieldhubRate float64
	runFieldhub := func(b *testing.B, rate float64, storage bool, inFlight int) loadResult {
		env := newBenchEnv(b)
		addr, host, devs, stats, br := env.startFieldhub(b, storage)
		spec := env.loadSpec(addr)
		spec.InFlight = inFlight
		for _, dev := range devs {
			spec.Devices = append(spec.Devices, deviceLogin(b, host, dev))
		}
		target, err := br.cfg.Store.(*db.DB).CreateDevice(context.Background(), db.NewDevice{DeviceID: "method-target"})
		if err != nil {
			b.Fatal(err)
		}
		// The device answering methods is a process of its own, as it
		// would be a machine of its own: sharing a scheduler with 1,000
		// saturating devices would time the generator, not the hub.
		login := deviceLogin(b, host, target)
		targetSpec := env.loadSpec(addr)
		targetSpec.MethodTarget = &login
		startLoadgen(b, env.dir, targetSpec)
		spec.PerDevice, spec.Interval = loadShape(b.N, rate)
		gen := startLoadgen(b, env.dir, spec)
		settle()
		gen.begin(b)
		// Method calls span the measured load only, as the PUBACK
		// figures do: not the connection burst, not the warm-up.
		before := stats()
		cpu := processCPU()
		stopCalls := callMethods(b, br, target.DeviceID)
		r := reportLoad(b, gen.result(b), cpu)
		calls := stopCalls()
		after := stats()
		if len(calls) > 0 {
			p := func(leg func(methodTiming) time.Duration, q int) float64 {
				lat := make([]time.Duration, len(calls))
				for i, c := range calls {
					lat[i] = leg(c)
				}
				slices.Sort(lat)
				return float64(lat[len(lat)*q/100]) / float64(time.Millisecond)
			}
			total := func(c methodTiming) time.Duration { return c.total }
			b.ReportMetric(p(total, 50), "method-p50-ms")
			b.ReportMetric(p(total, 99), "method-p99-ms")
			// The two legs of the tail (bench/README.md, "Method tail").
			b.ReportMetric(p(func(c methodTiming) time.Duration { return c.out }, 99), "method-out-p99-ms")
			b.ReportMetric(p(func(c methodTiming) time.Duration { return c.total - c.out }, 99), "method-back-p99-ms")
		}
		if batches := after.Batches - before.Batches; batches > 0 {
			b.ReportMetric(float64(after.Committed-before.Committed)/float64(batches), "msgs/commit")
		}
		return r
	}
	b.Run("fieldhub", func(b *testing.B) {
		r := runFieldhub(b, 0, true, 1)
		fieldhubRate = r.msgsPerSec
		if bareResult.msgsPerSec > 0 {
			b.ReportMetric(r.msgsPerSec/bareResult.msgsPerSec, "throughput-of-bare")
			b.ReportMetric(r.p99/bareResult.p99, "p99-x-bare")
		}
	})
	// Latency is only meaningful below saturation: the same load, paced at
	// half the rate the run above reached.
	b.Run("fieldhub-half-rate", func(b *testing.B) {
		if fieldhubRate == 0 {
			b.Skip("needs the fieldhub run's rate")
		}
		runFieldhub(b, fieldhubRate/2, true, 1)
	})
	// The broker's own cost: hooks, authentication and ACL, with a sink
	// that accepts every message at once instead of storing it.
	b.Run("fieldhub-no-storage", func(b *testing.B) {
		r := runFieldhub(b, 0, false, 1)
		if bareResult.msgsPerSec > 0 {
			b.ReportMetric(r.msgsPerSec/bareResult.msgsPerSec, "throughput-of-bare")
		}
	})
	// Devices that do not wait for each PUBACK before the next message (an
	// SDK application sending without awaiting, a device catching up):
	// 16 in flight each, on bare mochi and on Fieldhub.
	var bareWindowRate float64
	b.Run("bare-mochi-16-in-flight", func(b *testing.B) {
		bareWindowRate = runBare(b, 16).msgsPerSec
	})
	b.Run("fieldhub-16-in-flight", func(b *testing.B) {
		r := runFieldhub(b, 0, true, 16)
		if bareWindowRate > 0 {
			b.ReportMetric(r.msgsPerSec/bareWindowRate, "throughput-of-bare")
		}
	})
}

type benchEnv struct {
	cert   tls.Certificate
	caFile string
	dir    string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	// Reset the peak RSS so each run reports its own (Linux).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	dir := b.TempDir()
	cert, err := certs.Ensure(filepath.Join(dir, "tls"), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{cert: cert, caFile: filepath.Join(dir, "tls", certs.CAFile), dir: dir}
}

// loadSpec is a load generator spec for the broker at addr, without
// devices or load.
func (e *benchEnv) loadSpec(addr string) loadgenSpec {
	return loadgenSpec{Addr: addr, CAFile: e.caFile, ServerName: "localhost", DialConcurrency: 50}
}

// deviceLogin is how dev connects to the broker at host, with a SAS token.
func deviceLogin(b *testing.B, host string, dev db.Device) loadgenDevice {
	b.Helper()
	tok, err := auth.SignSAS(host+"/devices/"+dev.DeviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	return loadgenDevice{ID: dev.DeviceID, Username: host + "/" + dev.DeviceID + "/?api-version=2021-04-12", Password: tok}
}

// settle lets the connection burst (presence records) settle before
// measuring.
func settle() { time.Sleep(2 * time.Second) }

func (e *benchEnv) startBare(b *testing.B) string {
	b.Helper()
	s := mochi.New(&mochi.Options{
		Logger:                 slog.New(slog.DiscardHandler),
		SysTopicResendInterval: math.MaxInt32,
	})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddListener(&listener{id: "bare", ln: ln, tls: &tls.Config{Certificates: []tls.Certificate{e.cert}}}); err != nil {
		b.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// startFieldhub runs the broker as serve does: a durable database
// (synchronous=FULL by default) and the real ingest pipeline.
func (e *benchEnv) startFieldhub(b *testing.B, storage bool) (addr, host string, devs []db.Device, stats func() ingest.Stats, br *Broker) {
	b.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(e.dir, "fieldhub.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	for i := range benchDevices {
		dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("dev%04d", i)})
		if err != nil {
			b.Fatal(err)
		}
		devs = append(devs, dev)
	}
	pipe := ingest.New(dbtest.Telemetry(b, store), nil, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	var sink Ingester = pipe
	if !storage {
		sink = discardIngester{}
	}
	br, err = New(Config{
		Addr:    "127.0.0.1:0",
		TLS:     &tls.Config{Certificates: []tls.Certificate{e.cert}},
		Store:   store,
		Devices: registry.New(registry.Config{Store: store, Audit: store}),
		Ingest:  sink,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		br.Close()
		pipe.Close(context.Background())
	})
	port := br.Addr()[strings.LastIndexByte(br.Addr(), ':')+1:]
	return br.Addr(), "localhost:" + port, devs, pipe.Stats, br
}

// methodTiming is one method call's round trip, and of it the way out: from
// the call to the device's answer (the hub's write, the network, the device
// getting to run), as the device's clock says (the same machine's); the rest
// is the way back (the network, the hub reading the answer and waking the
// caller).
type methodTiming struct{ total, out time.Duration }

// callMethods calls method "ping" on device id in a loop until the
// returned stop function is called, which returns the round trips.
func callMethods(b *testing.B, br *Broker, id string) (stop func() []methodTiming) {
	b.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	result := make(chan []methodTiming)
	go func() {
		var lat []methodTiming
		for {
			select {
			case <-done:
				result <- lat
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			_, answer, err := br.InvokeMethod(ctx, id, "ping", []byte(`{}`), 5*time.Second)
			if err != nil {
				b.Errorf("method call during load: %v", err)
				continue
			}
			total := time.Since(start)
			answered, err := strconv.ParseInt(string(answer), 10, 64)
			if err != nil {
				b.Errorf("method answer %q: want the time the device answered", answer)
				continue
			}
			lat = append(lat, methodTiming{total: total, out: time.Unix(0, answered).Sub(start)})
		}
	}()
	return func() []methodTiming {
		close(done)
		return <-result
	}
}

type loadResult struct {
	msgsPerSec, p50, p99 float64
}

// minBenchMessages is the least a run sends: fewer say little about a
// steady state, and each run pays for connecting 1,000 devices, so the
// first run (b.N = 1 under `make bench`) is also the last.
const minBenchMessages = 100_000

// loadShape is how many messages each device sends for a run of n
// messages, at least minBenchMessages, as fast as the PUBACKs come back;
// or, paced to rate messages/s in all, about 10 s of load and the
// interval between one device's messages.
func loadShape(n int, rate float64) (perDevice int, interval time.Duration) {
	if rate > 0 {
		interval = time.Duration(float64(benchDevices) / rate * float64(time.Second))
		return max(1, int(10*time.Second/interval)), interval
	}
	return max(1, (max(n, minBenchMessages)+benchDevices-1)/benchDevices), 0
}

// reportLoad reports throughput and PUBACK latency from the generator,
// and the broker process's peak RSS and CPU per message since cpuBefore
// (processCPU at the start of the load: the devices are other processes,
// so this is the broker's own, whatever else the machine runs); ns/op is
// per message.
func reportLoad(b *testing.B, g loadgenResult, cpuBefore time.Duration) loadResult {
	cpu := processCPU() - cpuBefore
	r := loadResult{msgsPerSec: float64(g.Messages) / g.Seconds, p50: g.P50Ms, p99: g.P99Ms}
	b.ReportMetric(float64(cpu.Microseconds())/float64(g.Messages), "cpu-us/msg")
	b.ReportMetric(r.msgsPerSec, "msgs/s")
	b.ReportMetric(r.msgsPerSec*10, "readings/s")
	b.ReportMetric(r.p50, "puback-p50-ms")
	b.ReportMetric(r.p99, "puback-p99-ms")
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
	b.ReportMetric(g.PeakRSSMB, "loadgen-rss-MB")
	b.ReportMetric(g.Seconds*1e9/float64(g.Messages), "ns/op")
	return r
}

// benchBody is a JSON object of 10 numeric fields.
func benchBody(device, n int) []byte {
	var sb strings.Builder
	sb.WriteByte('{')
	for f := range 10 {
		if f > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"f`)
		sb.WriteString(strconv.Itoa(f))
		sb.WriteString(`":`)
		sb.WriteString(strconv.FormatFloat(float64(device%100)+float64(n%1000)/10+float64(f), 'f', 2, 64))
	}
	sb.WriteByte('}')
	return []byte(sb.String())
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// allowAll lets every client connect and publish, like mochi's AllowHook
// (which would pull a YAML dependency into go.sum).
type allowAll struct{ mochi.HookBase }

func (h *allowAll) ID() string { return "allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }

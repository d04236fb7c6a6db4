// Package bench holds the end-to-end benchmark of the real fieldhub binary;
// bench/summary turns a `make bench` run into the table of figures the
// issues ask for.
package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/certs"
	"fieldhub/ingest"
)

// The load: 1,000 devices, each with its own keep-alive HTTPS connection,
// each message a JSON object of 10 numeric fields, SDK batches of 50.
const (
	hubDevices  = 1000
	fields      = 10
	batchSize   = 50
	singlePhase = 15 * time.Second
	halfPhase   = 10 * time.Second
	batchPhase  = 10 * time.Second
	// The probe sends one message every probeInterval and then asks the
	// readings API every pollInterval whether its reading is there, which
	// bounds that figure's resolution.
	probeInterval = 250 * time.Millisecond
	pollInterval  = 10 * time.Millisecond
	visibleWait   = 5 * time.Second // a probe not seen by then counts as this late
)

var fieldNames = [fields]string{"temperature", "humidity", "pressure", "battery", "rssi", "voltage", "current", "power", "co2", "noise"}

// BenchmarkHubHTTPS runs the real fieldhub binary (`serve` on loopback with a
// temporary data folder), registers 1,000 devices through the operator API
// and drives them with 1,000 concurrent HTTPS clients signing SAS tokens:
// single messages as fast as acknowledgements come back, then paced at half
// that rate, then SDK batches. Meanwhile a probe device measures how long
// its reading takes, after the 204, to reach the device's event stream (what
// live charts draw from) and the readings API (what a chart loads). The
// baseline is a bare Echo HTTPS server answering 204, in its own process,
// driven by the same load generator in the same run; its single-message
// phase runs once before the hub's phases and once after them. CPU and peak
// RSS are the server process's (/proc/<pid>); the load generator runs in
// this process on the same cores. b.N is ignored: run it with -benchtime 1x.
func BenchmarkHubHTTPS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "fieldhub")
	if out, err := exec.Command("go", "build", "-o", bin, "fieldhub/cmd/fieldhub").CombinedOutput(); err != nil {
		b.Fatalf("build fieldhub: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	tlsDir := filepath.Join(data, "tls")
	// serve finds and uses this certificate; the bare server loads it too.
	if _, err := certs.Ensure(tlsDir, nil, time.Now()); err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, certs.CAFile))
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tlsConfig := &tls.Config{RootCAs: roots, ServerName: "localhost"}

	out, err := exec.Command(bin, "token", "create", "--data", data, "--role", "admin", "--name", "bench").Output()
	if err != nil {
		b.Fatalf("token create: %v", err)
	}
	api := &apiClient{token: lastLine(string(out)), http: &http.Client{Timeout: 10 * time.Second}}

	apiAddr, deviceAddr, mqttAddr, metricsAddr := freeAddr(b), freeAddr(b), freeAddr(b), freeAddr(b)
	// The 1,000 devices all come from this machine's address: no per-source cap.
	args := []string{"serve", "--data", data, "--addr", apiAddr,
		"--device-addr", deviceAddr, "--mqtt-addr", mqttAddr, "--log-level", "warn", "--device-max-conns-per-ip", "0",
		"--metrics-addr", metricsAddr}
	prof := newProfiler(b)
	if prof != nil {
		args = append(args, "--pprof-addr", prof.addr)
	}
	hubEnv, fixedHalfRate, err := experimentSettings(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	hub := startProcess(b, dir, "fieldhub", hubEnv, bin, args...)
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("fieldhub's log (the end):\n%s", tail(hub.log))
		}
	})
	api.base = "http://" + apiAddr
	waitFor(b, "fieldhub /readyz", func() bool {
		resp, err := http.Get(api.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	host := "localhost:" + portOf(deviceAddr)
	devices := make([]*device, hubDevices)
	for i := range devices {
		devices[i] = api.register(b, fmt.Sprintf("bench-%04d", i), host, tlsConfig)
	}
	probe := api.register(b, "bench-probe", host, tlsConfig)
	deviceURL := "https://" + deviceAddr

	// The baseline's single-message phase runs twice, before the hub's
	// phases and after them, and counts as both together: on this shared
	// machine the same bare server's rate moved by a sixth between
	// consecutive 15 s phases, and by two thirds between runs, so a single
	// phase a minute away from the hub's measured that minute as much as
	// the server (bench/README.md, issue 10, ninth round).
	hubOnly := os.Getenv("FIELDHUB_BENCH_HUB_ONLY") != ""
	var (
		bare          *process
		bareURL       string
		bareBefore    loadResult
		bareBeforeCPU float64
	)
	if !hubOnly {
		bare, bareURL = startBare(b, dir, tlsDir, tlsConfig)
		warmUp(b, devices, bareURL, "bare warm-up")
		bareBefore, bareBeforeCPU = measureSingle(b, bare, devices, bareURL)
		bareBefore.check(b, "bare single, before the hub")
		closeIdle(devices)
	}

	// Warm-up: a device's first message creates its series, a one-off cost;
	// it also opens every device's connection.
	warmOK := warmUp(b, devices, deviceURL, "warm-up")

	setupRSS := peakSince(b, hub.pid()) // start, registration and warm-up
	prof.phase(b, "single", singlePhase)
	singleStalls := readWriterStalls(b, metricsAddr)
	cpu0 := cpuSeconds(b, hub.pid())
	p := startProbe(b, probe, deviceURL, api)
	single := runLoad(devices, deviceURL, loadOptions{duration: singlePhase})
	visSSE, visAPI := p.stop()
	hubCPU := (cpuSeconds(b, hub.pid()) - cpu0) / single.elapsed.Seconds()
	b.Logf("single messages, the hub's writer: %s", readWriterStalls(b, metricsAddr).since(singleStalls))
	single.check(b, "single messages")
	singleRSS := peakSince(b, hub.pid())
	prof.phase(b, "half", halfPhase)
	stalls := readWriterStalls(b, metricsAddr)
	halfRate := cmp.Or(fixedHalfRate, single.rate()/2)
	half := runLoad(devices, deviceURL, loadOptions{duration: halfPhase, rate: halfRate})
	b.Logf("half rate, the hub's writer: %s", readWriterStalls(b, metricsAddr).since(stalls))
	half.check(b, "single messages at half rate")
	halfRSS := peakSince(b, hub.pid())
	prof.phase(b, "batch", batchPhase)
	batchCPU0 := cpuSeconds(b, hub.pid())
	batched := runLoad(devices, deviceURL, loadOptions{duration: batchPhase, batch: batchSize})
	// CPU per stored batch message: the collector's share moves with the
	// memory limit and the batch phase's live data (issue 10, eighth round).
	batchCPU := (cpuSeconds(b, hub.pid()) - batchCPU0) / float64(max(batched.ok*batchSize, 1)) * 1e6
	batched.check(b, "batches")
	batchRSS := peakSince(b, hub.pid())
	prof.phase(b, "end", 0)
	hubRSS := max(setupRSS, singleRSS, halfRSS, batchRSS)
	stored := float64(warmOK+single.ok+half.ok+batched.ok*batchSize) * fields
	hub.stop(b)
	// After a clean stop the write-ahead log is folded into the database file.
	dbInfo, err := os.Stat(filepath.Join(data, "fieldhub.db"))
	if err != nil {
		b.Fatal(err)
	}

	if hubOnly {
		// For comparing two builds of the hub in alternating runs: the
		// baseline would only take time.
		b.Logf("hub only: single %.0f msgs/s (p99 %.1f ms, %.2f cores, %.1f µs of CPU a message); half rate %.0f msgs/s (p99 %.1f ms); batches %.0f msgs/s (p99 %.0f ms, %.1f µs of CPU a message); 503s %d/%d/%d; peak RSS %.0f setup, %.0f single, %.0f half, %.0f batches",
			single.rate(), single.pct(0.99), hubCPU, hubCPU/single.rate()*1e6, half.rate(), half.pct(0.99), batched.rate()*batchSize, batched.pct(0.99), batchCPU,
			single.rejected, half.rejected, batched.rejected, setupRSS, singleRSS, halfRSS, batchRSS)
		return
	}

	// The baseline again, after the hub: bare Echo over HTTPS, same
	// certificate, same load.
	closeIdle(devices)
	warmUp(b, devices, bareURL, "bare warm-up after the hub")
	bareAfter, bareAfterCPU := measureSingle(b, bare, devices, bareURL)
	bareAfter.check(b, "bare single, after the hub")
	bareSingle := mergeLoads(bareBefore, bareAfter)
	bareCPU := (bareBeforeCPU + bareAfterCPU) / bareSingle.elapsed.Seconds()
	bareHalf := runLoad(devices, bareURL, loadOptions{duration: halfPhase, rate: halfRate})
	bareHalf.check(b, "bare at the hub's half rate")
	bareBatched := runLoad(devices, bareURL, loadOptions{duration: batchPhase, batch: batchSize})
	bareBatched.check(b, "bare batches")
	bareRSS := peakRSSMB(b, bare.pid())
	bare.stop(b)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(single.rate(), "msgs/s")
	b.ReportMetric(single.rate()*fields, "readings/s")
	b.ReportMetric(single.pct(0.50), "ack-p50-ms")
	b.ReportMetric(single.pct(0.99), "ack-p99-ms")
	b.ReportMetric(hubCPU, "cpu-cores")
	b.ReportMetric(half.rate(), "half-msgs/s")
	b.ReportMetric(half.pct(0.50), "half-ack-p50-ms")
	b.ReportMetric(half.pct(0.99), "half-ack-p99-ms")
	b.ReportMetric(batched.rate()*batchSize, "batch-msgs/s")
	b.ReportMetric(batched.rate()*batchSize*fields, "batch-readings/s")
	b.ReportMetric(batched.pct(0.99), "batch-ack-p99-ms")
	b.ReportMetric(hubRSS, "peak-rss-MB")
	b.ReportMetric(singleRSS, "single-peak-rss-MB")
	b.ReportMetric(batchRSS, "batch-peak-rss-MB")
	b.ReportMetric(pct(visSSE, 0.50), "visible-sse-p50-ms")
	b.ReportMetric(pct(visSSE, 0.99), "visible-sse-p99-ms")
	b.ReportMetric(pct(visAPI, 0.50), "visible-api-p50-ms")
	b.ReportMetric(pct(visAPI, 0.99), "visible-api-p99-ms")
	b.ReportMetric(float64(dbInfo.Size())/stored, "disk-bytes/reading")
	b.ReportMetric(float64(single.rejected+half.rejected+batched.rejected), "rejected-503")
	b.ReportMetric(bareSingle.rate(), "bare-req/s")
	b.ReportMetric(bareBefore.rate(), "bare-before-req/s")
	b.ReportMetric(bareAfter.rate(), "bare-after-req/s")
	b.ReportMetric(bareSingle.pct(0.50), "bare-ack-p50-ms")
	b.ReportMetric(bareSingle.pct(0.99), "bare-ack-p99-ms")
	b.ReportMetric(bareCPU, "bare-cpu-cores")
	b.ReportMetric(bareHalf.pct(0.50), "bare-half-ack-p50-ms")
	b.ReportMetric(bareHalf.pct(0.99), "bare-half-ack-p99-ms")
	b.ReportMetric(bareBatched.rate()*batchSize*fields, "bare-batch-readings/s")
	b.ReportMetric(bareRSS, "bare-peak-rss-MB")
	b.Logf("hub: %d devices; single %.0f msgs/s (ack p50 %.1f ms, p99 %.1f ms, %.2f cores, %d × 503); half rate %.0f msgs/s (p99 %.1f ms, %d × 503); batches %.0f msgs/s (p99 %.0f ms, %d × 503)",
		hubDevices, single.rate(), single.pct(0.5), single.pct(0.99), hubCPU, single.rejected, half.rate(), half.pct(0.99), half.rejected,
		batched.rate()*batchSize, batched.pct(0.99), batched.rejected)
	b.Logf("hub peak RSS: %.0f MB during start, registration and warm-up, %.0f single, %.0f half rate, %.0f batches; %d probes, visible via SSE p50 %.0f ms p99 %.0f ms, via API p50 %.0f ms p99 %.0f ms",
		setupRSS, singleRSS, halfRSS, batchRSS, len(visAPI), pct(visSSE, 0.5), pct(visSSE, 0.99), pct(visAPI, 0.5), pct(visAPI, 0.99))
	b.Logf("bare echo: single %.0f req/s before the hub, %.0f after", bareBefore.rate(), bareAfter.rate())
	b.Logf("bare echo: single %.0f req/s (p50 %.1f ms, p99 %.1f ms, %.2f cores); at %.0f req/s p99 %.1f ms; batches %.0f req/s; peak RSS %.0f MB",
		bareSingle.rate(), bareSingle.pct(0.5), bareSingle.pct(0.99), bareCPU, bareHalf.rate(), bareHalf.pct(0.99), bareBatched.rate(), bareRSS)
}

// experimentSettings reads BenchmarkHubHTTPS's switches for A/B runs,
// before the hub starts, so that a typo fails the run instead of measuring
// the wrong thing. FIELDHUB_BENCH_HUB_ENV: NAME=value pairs, space-separated,
// for the hub only (runtime settings such as GODEBUG or GOGC, which must not
// change the load generator's runtime too). FIELDHUB_BENCH_HALF_RATE: the
// half phase's rate, msgs/s (0: half the single phase's): at the hub's own
// half rate, a build with a lower single rate gets an easier half phase
// (bench/README.md, issue 10, ninth round).
func experimentSettings(getenv func(string) string) (hubEnv []string, halfRate float64, err error) {
	hubEnv = strings.Fields(getenv("FIELDHUB_BENCH_HUB_ENV"))
	for _, kv := range hubEnv {
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
			return nil, 0, fmt.Errorf("FIELDHUB_BENCH_HUB_ENV: %q is not NAME=value", kv)
		}
	}
	if s := getenv("FIELDHUB_BENCH_HALF_RATE"); s != "" {
		halfRate, err = strconv.ParseFloat(s, 64)
		if err != nil || !(halfRate > 0) || math.IsInf(halfRate, 0) {
			return nil, 0, fmt.Errorf("FIELDHUB_BENCH_HALF_RATE=%q: want a rate in messages a second, above 0", s)
		}
	}
	return hubEnv, halfRate, nil
}

func TestExperimentSettings(t *testing.T) {
	for _, tt := range []struct {
		name, hubEnv, halfRate string
		wantEnv                []string
		wantRate               float64
		wantErr                string // in the error; "" for none
	}{
		{name: "unset"},
		{name: "both", hubEnv: " GOGC=200  GODEBUG=gcshrinkstackoff=1 ", halfRate: "7000",
			wantEnv: []string{"GOGC=200", "GODEBUG=gcshrinkstackoff=1"}, wantRate: 7000},
		{name: "an empty value is a value", hubEnv: "GOMEMLIMIT=", wantEnv: []string{"GOMEMLIMIT="}},
		{name: "a pair without =", hubEnv: "GOGC=200 GOGC", wantErr: `FIELDHUB_BENCH_HUB_ENV: "GOGC" is not NAME=value`},
		{name: "a pair without a name", hubEnv: "=1", wantErr: `"=1" is not NAME=value`},
		{name: "not a number", halfRate: "abc", wantErr: `FIELDHUB_BENCH_HALF_RATE="abc"`},
		{name: "negative", halfRate: "-5", wantErr: `FIELDHUB_BENCH_HALF_RATE="-5"`},
		{name: "zero", halfRate: "0", wantErr: `FIELDHUB_BENCH_HALF_RATE="0"`},
		{name: "infinite", halfRate: "Inf", wantErr: `FIELDHUB_BENCH_HALF_RATE="Inf"`},
		{name: "not a number at all", halfRate: "NaN", wantErr: `FIELDHUB_BENCH_HALF_RATE="NaN"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"FIELDHUB_BENCH_HUB_ENV": tt.hubEnv, "FIELDHUB_BENCH_HALF_RATE": tt.halfRate}
			gotEnv, gotRate, err := experimentSettings(func(k string) string { return env[k] })
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			}
			if !slices.Equal(gotEnv, tt.wantEnv) || gotRate != tt.wantRate {
				t.Errorf("got %q, %v; want %q, %v", gotEnv, gotRate, tt.wantEnv, tt.wantRate)
			}
		})
	}
}

// startBare starts BenchmarkHubHTTPS's baseline server (TestBareServerProcess)
// on the hub's certificate and waits until it accepts TLS connections.
func startBare(b *testing.B, dir, tlsDir string, tlsConfig *tls.Config) (*process, string) {
	b.Helper()
	addr := freeAddr(b)
	bare := startProcess(b, dir, "bare", []string{"FIELDHUB_BENCH_BARE_ADDR=" + addr, "FIELDHUB_BENCH_BARE_TLS=" + tlsDir},
		os.Args[0], "-test.run=^TestBareServerProcess$")
	waitFor(b, "bare server", func() bool {
		c, err := tls.Dial("tcp", addr, tlsConfig)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return bare, "https://" + addr
}

// measureSingle runs a single-message phase against base, served by p, and
// returns it with the CPU seconds p spent meanwhile.
func measureSingle(b *testing.B, p *process, devices []*device, base string) (loadResult, float64) {
	cpu0 := cpuSeconds(b, p.pid())
	res := runLoad(devices, base, loadOptions{duration: singlePhase})
	return res, cpuSeconds(b, p.pid()) - cpu0
}

// closeIdle closes every device's idle connection, so that the next
// requests connect to whichever server they name.
func closeIdle(devices []*device) {
	for _, d := range devices {
		d.client.CloseIdleConnections()
	}
}

// mergeLoads is two phases of the same load as one: their requests
// counted together, over their time together.
func mergeLoads(a, b loadResult) loadResult {
	m := loadResult{ok: a.ok + b.ok, rejected: a.rejected + b.rejected, failed: a.failed + b.failed,
		first: cmp.Or(a.first, b.first), elapsed: a.elapsed + b.elapsed}
	m.lat = append(append(make([]time.Duration, 0, len(a.lat)+len(b.lat)), a.lat...), b.lat...)
	slices.Sort(m.lat)
	return m
}

func TestMergeLoads(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		d := make([]time.Duration, len(n))
		for i, v := range n {
			d[i] = time.Duration(v) * time.Millisecond
		}
		return d
	}
	fail := errors.New("status 500")
	for _, tt := range []struct {
		name       string
		a, b, want loadResult
	}{
		{"the slower phase weighs by its time",
			loadResult{ok: 3, lat: ms(1, 2, 9), elapsed: time.Second},
			loadResult{ok: 1, rejected: 2, lat: ms(5), elapsed: 3 * time.Second},
			loadResult{ok: 4, rejected: 2, lat: ms(1, 2, 5, 9), elapsed: 4 * time.Second}},
		{"the first failure of either",
			loadResult{ok: 1, lat: ms(3), elapsed: time.Second},
			loadResult{ok: 1, failed: 1, first: fail, lat: ms(4), elapsed: time.Second},
			loadResult{ok: 2, failed: 1, first: fail, lat: ms(3, 4), elapsed: 2 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeLoads(tt.a, tt.b)
			if got.ok != tt.want.ok || got.rejected != tt.want.rejected || got.failed != tt.want.failed ||
				got.first != tt.want.first || got.elapsed != tt.want.elapsed || !slices.Equal(got.lat, tt.want.lat) {
				t.Errorf("mergeLoads = %+v, want %+v", got, tt.want)
			}
			if got.rate() != float64(tt.want.ok)/tt.want.elapsed.Seconds() {
				t.Errorf("rate %v, want requests over time together", got.rate())
			}
		})
	}
}

// profiler keeps the hub's profiles of each load phase when
// FIELDHUB_BENCH_PROFILE names a folder (the hub then serves them on
// --pprof-addr): <phase>-cpu.pprof over the phase, <phase>-heap.pprof of
// the live heap three quarters into it (near its peak; <phase>-heap.txt,
// the same in text, ends with the runtime's memory statistics), and allocs-<phase>.
// pprof, the allocations since start when the phase began, so that
// `go tool pprof -sample_index=alloc_space -base allocs-single.pprof
// allocs-half.pprof` shows what the single-message phase allocated. nil
// (every method a no-op) when the variable is unset.
type profiler struct {
	dir, addr string
	running   sync.WaitGroup
}

func newProfiler(b *testing.B) *profiler {
	dir := os.Getenv("FIELDHUB_BENCH_PROFILE")
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return &profiler{dir: dir, addr: freeAddr(b)}
}

// phase ends the profiles of the phase before (waits for them) and starts
// those of the phase called name, which lasts d (0: none, the end).
func (p *profiler) phase(b *testing.B, name string, d time.Duration) {
	if p == nil {
		return
	}
	p.running.Wait()
	p.fetch(b, "/debug/pprof/allocs", "allocs-"+name+".pprof")
	if d == 0 {
		return
	}
	p.running.Add(2)
	go func() {
		defer p.running.Done()
		// The phase's length less a second: its load ends after d.
		p.fetch(b, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int((d-time.Second)/time.Second)), name+"-cpu.pprof")
	}()
	go func() {
		defer p.running.Done()
		time.Sleep(d * 3 / 4)
		// The runtime's memory statistics first (the text form ends with
		// them), as they are before the profile's collection.
		p.fetch(b, "/debug/pprof/heap?debug=1", name+"-heap.txt")
		p.fetch(b, "/debug/pprof/heap?gc=1", name+"-heap.pprof")
	}()
}

func (p *profiler) fetch(b *testing.B, path, file string) {
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		b.Errorf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(p.dir, file), data, 0o644)
	}
	if err != nil {
		b.Errorf("profile %s: %v", path, err)
	}
}

// TestBareServerProcess is BenchmarkHubHTTPS's baseline server: Echo over
// HTTPS answering 204 to device telemetry after reading the body. It runs
// only in the child process the benchmark starts, until its stdin closes.
func TestBareServerProcess(t *testing.T) {
	addr := os.Getenv("FIELDHUB_BENCH_BARE_ADDR")
	if addr == "" {
		t.Skip("runs only as BenchmarkHubHTTPS's baseline server")
	}
	dir := os.Getenv("FIELDHUB_BENCH_BARE_TLS")
	cert, err := certs.Load(filepath.Join(dir, certs.ServerFile), filepath.Join(dir, certs.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.POST("/devices/:id/messages/events", func(c echo.Context) error {
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	// The same server settings as fieldhub's device listener.
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	// Until the benchmark closes stdin or sends SIGTERM (it does both). The
	// handler stays registered until the process exits: a SIGTERM that came
	// after it was removed would kill the process instead.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-sigs:
	case <-eof:
	}
	srv.Close()
}

// device is one simulated device: its own connection and SAS token.
type device struct {
	id, token string
	client    *http.Client
	lastTS    int64 // the last "ts" it sent in a batch, Unix ms
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// register creates a device through the operator API and signs its token.
func (a *apiClient) register(b *testing.B, id, host string, tlsConfig *tls.Config) *device {
	b.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.base+"/api/v1/devices", strings.NewReader(`{"id":"`+id+`"}`))
	req.Header.Set("Content-Type", "application/json")
	var created struct {
		PrimaryKey string `json:"primaryKey"`
	}
	if err := a.do(req, http.StatusCreated, &created); err != nil {
		b.Fatalf("register %s: %v", id, err)
	}
	tok, err := auth.SignSAS(host+"/devices/"+id, created.PrimaryKey, time.Now().Add(2*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig.Clone(), MaxIdleConnsPerHost: 1, ResponseHeaderTimeout: 30 * time.Second}
	return &device{id: id, token: tok, client: &http.Client{Transport: tr}}
}

// do sends an operator API request and decodes its JSON answer into v.
func (a *apiClient) do(req *http.Request, want int, v any) error {
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, body)
	}
	return json.Unmarshal(body, v)
}

// send posts one telemetry request: a single message, or a batch of n. It
// returns the status and, for a 503, the Retry-After delay (1 s when absent).
func (d *device) send(base string, r *rand.Rand, batch int, extra string) (int, time.Duration, error) {
	var body []byte
	if batch == 0 {
		body = messageBody(r, extra, 0)
	} else {
		now := time.Now().UnixMilli()
		body = append(body, '[')
		for k := range batch {
			// Timestamps rise within and across a device's batches.
			d.lastTS = max(d.lastTS+1, now-int64(batch)+int64(k))
			if k > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"body":"`...)
			body = base64.StdEncoding.AppendEncode(body, messageBody(r, "", d.lastTS))
			body = append(body, `","properties":{}}`...)
		}
		body = append(body, ']')
	}
	req, err := http.NewRequest(http.MethodPost, base+"/devices/"+d.id+"/messages/events?api-version=2020-09-30", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", d.token)
	if batch > 0 {
		req.Header.Set("Content-Type", ingest.BatchContentType)
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	retry := time.Second
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		retry = min(time.Duration(secs)*time.Second, 5*time.Second)
	}
	return resp.StatusCode, retry, nil
}

// messageBody is a JSON object of the 10 fields, plus extra (`"k":v`) and a
// "ts" when ts is not 0.
func messageBody(r *rand.Rand, extra string, ts int64) []byte {
	b := []byte{'{'}
	for i, name := range fieldNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `"%s":%.2f`, name, 10+r.Float64()*40)
	}
	if extra != "" {
		b = append(b, ',')
		b = append(b, extra...)
	}
	if ts != 0 {
		b = fmt.Appendf(b, `,"ts":%d`, ts)
	}
	return append(b, '}')
}

// warmUp has every device send one message, which opens its connection,
// and returns how many were stored. 1,000 TLS handshakes at once on a
// loaded machine: some can outlast the server's 10 s header timeout, and
// the server closes them. Those devices connect again, as real ones would
// (every device sends again, which costs nothing measured).
func warmUp(b *testing.B, devices []*device, base, what string) int {
	b.Helper()
	warm := runLoad(devices, base, loadOptions{messages: 1})
	ok := warm.ok
	for try := 0; warm.failed > 0 && try < 3; try++ {
		warm = runLoad(devices, base, loadOptions{messages: 1})
		ok += warm.ok
	}
	warm.check(b, what)
	return ok
}

type loadOptions struct {
	messages int           // requests per device; 0: until duration has passed
	duration time.Duration //
	rate     float64       // requests per second over all devices; 0: closed loop
	batch    int           // messages per request; 0: single messages
}

type loadResult struct {
	ok, rejected, failed int
	first                error
	lat                  []time.Duration // of the 204s, sorted
	elapsed              time.Duration
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r loadResult) pct(q float64) float64 { return pct(r.lat, q) }

// check fails the benchmark when nothing got through or more than 1 % of
// the requests failed (503s, the pipeline's back-pressure, are counted
// apart and reported).
func (r loadResult) check(b *testing.B, phase string) {
	b.Helper()
	if r.ok == 0 || r.failed*100 > r.ok {
		b.Fatalf("%s: %d requests answered 204, %d failed; first failure: %v", phase, r.ok, r.failed, r.first)
	}
}

// runLoad has every device send, one request in flight each, either as fast
// as the answers come or paced to opt.rate with the devices' send times
// spread evenly; a late answer delays that device's next request, as on a
// real device.
func runLoad(devices []*device, base string, opt loadOptions) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	var interval time.Duration
	if opt.rate > 0 {
		interval = time.Duration(float64(len(devices)) / opt.rate * float64(time.Second))
	}
	start := time.Now()
	deadline := start.Add(opt.duration)
	for i, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			var lat []time.Duration
			var ok, rejected, failed int
			var first error
			offset := interval * time.Duration(i) / time.Duration(len(devices))
			for n := 0; ; n++ {
				if opt.messages > 0 && n >= opt.messages || opt.messages == 0 && !time.Now().Before(deadline) {
					break
				}
				if interval > 0 {
					time.Sleep(time.Until(start.Add(offset + time.Duration(n)*interval)))
				}
				t := time.Now()
				status, retry, err := d.send(base, r, opt.batch, "")
				switch {
				case err == nil && status == http.StatusNoContent:
					ok++
					lat = append(lat, time.Since(t))
				case err == nil && status == http.StatusServiceUnavailable:
					// The pipeline's back-pressure: wait as told, as the SDKs do.
					rejected++
					time.Sleep(retry)
				default:
					failed++
					if first == nil {
						first = err
						if err == nil {
							first = fmt.Errorf("status %d", status)
						}
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok += ok
			res.rejected += rejected
			res.failed += failed
			res.lat = append(res.lat, lat...)
			if res.first == nil {
				res.first = first
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

// probeRun measures how soon a reading can be seen after its 204.
type probeRun struct {
	done     chan struct{}
	finished chan struct{}
	mu       sync.Mutex
	seen     map[int]time.Time // probe value → when the event stream delivered it
	sse, api []time.Duration
}

// startProbe subscribes to the probe device's event stream and starts
// sending it a message with a rising "probe" value every probeInterval;
// after each 204 it polls the readings API until the value is there.
func startProbe(b *testing.B, d *device, deviceURL string, api *apiClient) *probeRun {
	b.Helper()
	p := &probeRun{done: make(chan struct{}), finished: make(chan struct{}), seen: map[int]time.Time{}}
	req, _ := http.NewRequest(http.MethodGet, api.base+"/api/v1/devices/"+d.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		b.Fatalf("subscribe to %s's events: %v", d.id, err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("subscribe to %s's events: status %d", d.id, resp.StatusCode)
	}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			if !ok || !bytes.Contains(data, []byte(`"probe"`)) {
				continue
			}
			var ev struct {
				V map[string]float64 `json:"v"`
			}
			if json.Unmarshal(data, &ev) == nil {
				if v, ok := ev.V["probe"]; ok {
					p.mu.Lock()
					p.seen[int(v)] = time.Now()
					p.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		defer close(p.finished)
		defer resp.Body.Close()
		r := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(probeInterval)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			status, _, err := d.send(deviceURL, r, 0, `"probe":`+strconv.Itoa(seq))
			if err != nil || status != http.StatusNoContent {
				continue // under overload; the load phase reports those
			}
			acked := time.Now()
			p.api = append(p.api, p.pollReadings(api, d.id, seq, acked))
			p.sse = append(p.sse, p.waitEvent(seq, acked))
		}
	}()
	return p
}

// pollReadings asks for the largest probe value in the minutes around acked
// until it reaches seq, and returns how long after acked that was.
func (p *probeRun) pollReadings(api *apiClient, id string, seq int, acked time.Time) time.Duration {
	q := url.Values{"metric": {"probe"}, "points": {"1"},
		"from": {strconv.FormatInt(acked.Add(-time.Minute).UnixMilli(), 10)},
		"to":   {strconv.FormatInt(acked.Add(time.Minute).UnixMilli(), 10)}}
	for time.Since(acked) < visibleWait {
		req, _ := http.NewRequest(http.MethodGet, api.base+"/api/v1/devices/"+id+"/readings?"+q.Encode(), nil)
		var got struct {
			Buckets []struct {
				Max float64 `json:"max"`
			} `json:"buckets"`
		}
		if err := api.do(req, http.StatusOK, &got); err == nil && len(got.Buckets) > 0 && got.Buckets[len(got.Buckets)-1].Max >= float64(seq) {
			return time.Since(acked)
		}
		time.Sleep(pollInterval)
	}
	return visibleWait
}

// waitEvent returns how long after acked the event stream delivered seq: 0
// when it came before the 204 (events go out on commit, as the 204 does).
func (p *probeRun) waitEvent(seq int, acked time.Time) time.Duration {
	for {
		p.mu.Lock()
		t, ok := p.seen[seq]
		p.mu.Unlock()
		if ok {
			return max(0, t.Sub(acked))
		}
		if time.Since(acked) >= visibleWait {
			return visibleWait
		}
		time.Sleep(time.Millisecond)
	}
}

// stop ends the probe and returns the delays to the event stream and to the
// readings API, sorted.
func (p *probeRun) stop() (sse, api []time.Duration) {
	close(p.done)
	<-p.finished
	slices.Sort(p.sse)
	slices.Sort(p.api)
	return p.sse, p.api
}

// process is a child process the benchmark started.
type process struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   string
	done  chan error
}

// startProcess starts bin with args; its output goes to <dir>/<name>.log
// and it is killed at the latest when the benchmark ends.
func startProcess(b *testing.B, dir, name string, env []string, bin string, args ...string) *process {
	b.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), log: filepath.Join(dir, name+".log"), done: make(chan error, 1)}
	logFile, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Env = append(os.Environ(), env...)
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	b.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end (SIGTERM, stdin closed) and waits for it.
func (p *process) stop(b *testing.B) {
	b.Helper()
	p.stdin.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			b.Fatalf("%s: %v", p.name, err)
		}
		if err != nil {
			b.Fatalf("%s exited with %v; log:\n%s", p.name, err, tail(p.log))
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		b.Fatalf("%s did not stop within 60 s; log:\n%s", p.name, tail(p.log))
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// cpuSeconds is the user plus system CPU time a process has used so far.
func cpuSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which may hold spaces: state is
	// field 3 of proc(5), utime 14 and stime 15, in clock ticks (USER_HZ,
	// 100 on Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// peakSince is a process's peak resident set size since the last call (or
// its start), in MB; it then resets the peak, so that each phase has its own.
func peakSince(b *testing.B, pid int) float64 {
	b.Helper()
	peak := peakRSSMB(b, pid)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
	return peak
}

// peakRSSMB is a process's peak resident set size (VmHWM) in MB.
func peakRSSMB(b *testing.B, pid int) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("parse VmHWM %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func waitFor(b *testing.B, what string, ready func() bool) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			b.Fatalf("%s not ready within 60 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// pct is the q-quantile of sorted durations, in milliseconds.
func pct(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	return float64(d[min(len(d)-1, int(float64(len(d))*q))]) / float64(time.Millisecond)
}

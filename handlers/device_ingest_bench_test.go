package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
)

// BenchmarkDeviceEventsHTTP posts single telemetry messages (10 numeric
// fields, SAS-signed, keep-alive, 64 concurrent clients over 100 devices)
// through the real router, SAS check and durable pipeline, beside a bare Echo
// POST→204 handler measured the same way in the same run. Plain HTTP on
// loopback: TLS is the same cost for both and left out.
func BenchmarkDeviceEventsHTTP(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	d, err := db.Open(ctx, path, db.Options{}) // synchronous=FULL
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	tel := dbtest.Telemetry(b, d)
	p := ingest.New(tel, nil, ingest.Options{})
	defer p.Close(ctx)
	router, _ := handlers.New(testkit.WithServices(handlers.Config{Telemetry: tel, Ingest: p, DeviceHost: "hub.test:8443"}, d, nil))
	srv := httptest.NewServer(router)
	defer srv.Close()
	const devices = 100
	tokens := benchDevices(b, d, devices)
	body := benchMessage

	bare := echo.New()
	bare.POST("/devices/:id/messages/events", func(c echo.Context) error {
		io.Copy(io.Discard, c.Request().Body)
		return c.NoContent(http.StatusNoContent)
	})
	bareSrv := httptest.NewServer(bare)
	defer bareSrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	post := func(base string, n int64) error {
		i := n % devices
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/devices/d%03d/messages/events?api-version=2021-04-12", base, i), strings.NewReader(body))
		req.Header.Set("Authorization", tokens[i])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// run returns the wall time and the process's CPU time (client and
	// server together: the difference between the hub's and the bare
	// server's is what the hub adds per message, a figure that holds on a
	// busy machine, where rates do not).
	run := func(base string, n int) (time.Duration, time.Duration) {
		cpu0 := cpuTime(b)
		var seq atomic.Int64
		errs := make(chan error, 64)
		start := time.Now()
		for range 64 {
			go func() {
				for {
					k := seq.Add(1)
					if k > int64(n) {
						errs <- nil
						return
					}
					if err := post(base, k); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for range 64 {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start), cpuTime(b) - cpu0
	}
	run(srv.URL, devices) // metrics exist: steady state
	bareN := max(b.N, 2000)
	bareTime, bareCPU := run(bareSrv.URL, bareN)
	b.ResetTimer()
	elapsed, cpu := run(srv.URL, b.N)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	bareRate := float64(bareN) / bareTime.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rate*10, "readings/s")
	b.ReportMetric(bareRate, "bare-echo-req/s")
	b.ReportMetric(rate/bareRate, "x-bare")
	cpuPer, bareCPUPer := cpu.Seconds()*1e6/float64(b.N), bareCPU.Seconds()*1e6/float64(bareN)
	b.ReportMetric(cpuPer, "cpu-µs/msg")
	b.ReportMetric(bareCPUPer, "bare-cpu-µs/req")
	b.ReportMetric(cpuPer-bareCPUPer, "extra-cpu-µs/msg")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time (user and system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeviceRouterAllocs serves single telemetry messages through the
// device listener's router (DeviceRouter) in-process, without a connection
// (ServeHTTP on a prepared request, 32 goroutines over 100 devices), into
// the durable pipeline. Its allocs/op and B/op are what the hub allocates
// per message beyond net/http's own request parsing: the middleware chain,
// device authentication, the body, ingest's queue and the writer's share of
// a group commit (the loaded machine of BenchmarkHubHTTPS cannot resolve
// these, and every allocation there is CPU taken from the load generator).
func BenchmarkDeviceRouterAllocs(b *testing.B) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	tel := dbtest.Telemetry(b, d)
	p := ingest.New(tel, nil, ingest.Options{})
	defer p.Close(ctx)
	_, server := handlers.New(testkit.WithServices(handlers.Config{Telemetry: tel, Ingest: p, DeviceHost: "hub.test:8443", SeparateDeviceListener: true}, d, nil))
	router := server.DeviceRouter()
	const devices = 100
	tokens := benchDevices(b, d, devices)
	body := benchMessage
	var seq atomic.Int64
	post := func() {
		i := seq.Add(1) % devices
		req := httptest.NewRequest("POST", fmt.Sprintf("/devices/d%03d/messages/events?api-version=2021-04-12", i), strings.NewReader(body))
		req.Header.Set("Authorization", tokens[i])
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		router.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Errorf("status %d: %s", w.Code, w.Body)
		}
	}
	for range devices { // every device's series exists: steady state
		post()
	}
	// What the request itself costs the benchmark (not the hub).
	reqAllocs := testing.AllocsPerRun(100, func() {
		req := httptest.NewRequest("POST", "/devices/d001/messages/events?api-version=2021-04-12", strings.NewReader(body))
		req.Header.Set("Authorization", tokens[1])
		req.Header.Set("Content-Type", "application/json")
		_ = httptest.NewRecorder()
	})
	b.SetParallelism(16) // 32 senders on 2 cores: commits of several messages
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post()
		}
	})
	b.ReportMetric(reqAllocs, "request-allocs/op")
}

// benchMessage is the single message the device-path benchmarks send: ten
// numeric readings, as a metering device reports them.
const benchMessage = `{"temperature":21.5,"humidity":45.25,"pressure":1013.2,"battery":3.71,"rssi":-67,"voltage":229.8,"current":1.25,"power":287.3,"co2":415,"noise":38.5}`

// benchDevices registers n devices (d000, d001, …) and returns a SAS token
// for each, valid for an hour.
func benchDevices(b *testing.B, d *db.DB, n int) []string {
	b.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		dev, err := d.CreateDevice(context.Background(), db.NewDevice{DeviceID: fmt.Sprintf("d%03d", i)})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = token(b, dev.DeviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
	}
	return tokens
}

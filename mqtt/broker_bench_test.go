package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/auth"
	"fieldhub/certs"
	"fieldhub/db"
	"fieldhub/ingest"
)

// benchDevices is how many devices publish at once.
const benchDevices = 1000

// bareResult is the baseline the Fieldhub run compares itself with.
var bareResult struct {
	msgsPerSec, p50, p99 float64
}

// BenchmarkIngest measures QoS 1 telemetry from 1,000 concurrent devices
// over TLS, one message in flight per device, each a JSON body of 10
// numeric fields: first on bare mochi (no hooks, no storage), then on
// Fieldhub (authentication, ACL, durable commit before PUBACK), with the
// same load generator in this process. Each run sends at least 100,000
// messages. Peak RSS includes the generator.
func BenchmarkIngest(b *testing.B) {
	b.Run("bare-mochi", func(b *testing.B) {
		env := newBenchEnv(b)
		addr := env.startBare(b)
		clients := env.dialAll(b, addr, func(i int) (string, string, string) {
			id := fmt.Sprintf("dev%04d", i)
			return id, "user", "pass"
		})
		r := runLoad(b, clients)
		bareResult.msgsPerSec, bareResult.p50, bareResult.p99 = r.msgsPerSec, r.p50, r.p99
	})
	var fieldhubRate float64
	runFieldhub := func(b *testing.B, rate float64, storage bool) loadResult {
		env := newBenchEnv(b)
		addr, host, devs, stats, br := env.startFieldhub(b, storage)
		stopCalls := env.callMethods(b, br, addr, host)
		clients := env.dialAll(b, addr, func(i int) (string, string, string) {
			dev := devs[i]
			tok, err := auth.SignSAS(host+"/devices/"+dev.DeviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			return dev.DeviceID, host + "/" + dev.DeviceID + "/?api-version=2021-04-12", tok
		})
		before := stats()
		r := runLoadAt(b, clients, rate)
		methodLat := stopCalls()
		after := stats()
		if len(methodLat) > 0 {
			slices.Sort(methodLat)
			b.ReportMetric(float64(methodLat[len(methodLat)/2])/float64(time.Millisecond), "method-p50-ms")
			b.ReportMetric(float64(methodLat[len(methodLat)*99/100])/float64(time.Millisecond), "method-p99-ms")
		}
		if batches := after.Batches - before.Batches; batches > 0 {
			b.ReportMetric(float64(after.Committed-before.Committed)/float64(batches), "msgs/commit")
		}
		return r
	}
	b.Run("fieldhub", func(b *testing.B) {
		r := runFieldhub(b, 0, true)
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
		runFieldhub(b, fieldhubRate/2, true)
	})
	// The broker's own cost: hooks, authentication and ACL, with a sink
	// that accepts every message at once instead of storing it.
	b.Run("fieldhub-no-storage", func(b *testing.B) {
		r := runFieldhub(b, 0, false)
		if bareResult.msgsPerSec > 0 {
			b.ReportMetric(r.msgsPerSec/bareResult.msgsPerSec, "throughput-of-bare")
		}
	})
}

// discardIngester accepts every message without storing it.
type discardIngester struct{}

func (discardIngester) Submit(context.Context, ...ingest.Message) error { return nil }

type benchEnv struct {
	cert  tls.Certificate
	roots *x509.CertPool
	dir   string
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
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", certs.CAFile))
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &benchEnv{cert: cert, roots: roots, dir: dir}
}

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
	pipe, err := ingest.New(ctx, store, nil, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var sink Ingester = pipe
	if !storage {
		sink = discardIngester{}
	}
	br, err = New(Config{
		Addr:   "127.0.0.1:0",
		TLS:    &tls.Config{Certificates: []tls.Certificate{e.cert}},
		DB:     store,
		Ingest: sink,
		Logger: slog.New(slog.DiscardHandler),
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

// callMethods connects one more device that answers direct methods and
// calls it in a loop until the returned stop function is called, which
// returns the round-trip times.
func (e *benchEnv) callMethods(b *testing.B, br *Broker, addr, host string) (stop func() []time.Duration) {
	b.Helper()
	ctx := context.Background()
	dev, err := br.cfg.DB.CreateDevice(ctx, db.NewDevice{DeviceID: "method-target"})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := auth.SignSAS(host+"/devices/"+dev.DeviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	opts := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(dev.DeviceID).
		SetUsername(host + "/" + dev.DeviceID + "/?api-version=2021-04-12").SetPassword(tok).
		SetTLSConfig(&tls.Config{RootCAs: e.roots, ServerName: "localhost"}).SetProtocolVersion(4).
		SetAutoReconnect(false).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(wait) || t.Error() != nil {
		b.Fatalf("connect method target: %v", t.Error())
	}
	answer := func(c paho.Client, m paho.Message) {
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+len("$rid="):]
		c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, m.Payload())
	}
	if t := c.Subscribe("$iothub/methods/POST/#", 0, answer); !t.WaitTimeout(wait) || t.Error() != nil {
		b.Fatalf("subscribe method target: %v", t.Error())
	}
	done := make(chan struct{})
	result := make(chan []time.Duration)
	go func() {
		var lat []time.Duration
		for {
			select {
			case <-done:
				result <- lat
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			if _, _, err := br.InvokeMethod(ctx, dev.DeviceID, "ping", []byte(`{}`), 5*time.Second); err != nil {
				b.Errorf("method call during load: %v", err)
				continue
			}
			lat = append(lat, time.Since(start))
		}
	}()
	return func() []time.Duration {
		close(done)
		lat := <-result
		c.Disconnect(0)
		return lat
	}
}

// dialAll connects benchDevices clients, 50 at a time.
func (e *benchEnv) dialAll(b *testing.B, addr string, creds func(i int) (id, user, pass string)) []*loadClient {
	b.Helper()
	clients := make([]*loadClient, benchDevices)
	sem := make(chan struct{}, 50)
	errs := make(chan error, benchDevices)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, user, pass := creds(i)
			c, err := dialLoad(addr, &tls.Config{RootCAs: e.roots, ServerName: "localhost"}, id, user, pass)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("connect: %v", err)
	}
	b.Cleanup(func() {
		for _, c := range clients {
			c.close()
		}
	})
	// Let the connection burst (presence records) settle before measuring.
	time.Sleep(2 * time.Second)
	return clients
}

type loadResult struct {
	msgsPerSec, p50, p99 float64
}

// minBenchMessages is the least a run sends: fewer say little about a
// steady state, and each run pays for connecting 1,000 devices, so the
// first run (b.N = 1 under `make bench`) is also the last.
const minBenchMessages = 100_000

// runLoad sends at least b.N messages spread over the clients and reports
// throughput and PUBACK latency; ns/op is per message.
func runLoad(b *testing.B, clients []*loadClient) loadResult {
	return runLoadAt(b, clients, 0)
}

// runLoadAt is runLoad paced to rate messages/s in all (0: as fast as the
// PUBACKs come back). Paced clients send on a schedule spread over the
// interval; a late PUBACK delays the next message, as in a real device.
func runLoadAt(b *testing.B, clients []*loadClient, rate float64) loadResult {
	perClient := max(1, (max(b.N, minBenchMessages)+len(clients)-1)/len(clients))
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(len(clients)) / rate * float64(time.Second))
		perClient = max(1, int(10*time.Second/interval)) // about 10 s of load
	}
	lat := make([][]time.Duration, len(clients))
	errs := make(chan error, len(clients))
	// Warm up: a device's first message creates its series, a one-off cost
	// that would otherwise be 1-2 % of a run and all of its p99.
	var warm sync.WaitGroup
	for i, c := range clients {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if _, err := c.publish(fmt.Sprintf("devices/dev%04d/messages/events/", i), benchBody(i, 0)); err != nil {
				errs <- err
			}
		}()
	}
	warm.Wait()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("devices/dev%04d/messages/events/%%24.ct=application%%2Fjson", i)
			lat[i] = make([]time.Duration, 0, perClient)
			offset := interval * time.Duration(i) / time.Duration(len(clients))
			for n := range perClient {
				if interval > 0 {
					time.Sleep(time.Until(start.Add(offset + time.Duration(n)*interval)))
				}
				d, err := c.publish(topic, benchBody(i, n))
				if err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("publish: %v", err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := loadResult{
		msgsPerSec: float64(len(all)) / elapsed.Seconds(),
		p50:        float64(all[len(all)/2]) / float64(time.Millisecond),
		p99:        float64(all[len(all)*99/100]) / float64(time.Millisecond),
	}
	b.ReportMetric(r.msgsPerSec, "msgs/s")
	b.ReportMetric(r.msgsPerSec*10, "readings/s")
	b.ReportMetric(r.p50, "puback-p50-ms")
	b.ReportMetric(r.p99, "puback-p99-ms")
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(len(all)), "ns/op")
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

package bus_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
)

// BenchmarkMethodAcrossInstances is the round trip of a direct method
// invoked on instance B for a device (a real MQTT client) connected to
// instance A, through a real nats-server: the transport alone (B's bus
// finds A in the store, asks A over NATS, A's broker asks the device) and
// the whole call as the API makes it (with the live events and the audit
// entry). It reports the latency's p50 and p99, with 1 and 8 callers.
func BenchmarkMethodAcrossInstances(b *testing.B) {
	c := newCluster(b)
	a, bi := c.instance("a"), c.instance("b")
	d := a.connect(b, c.device("dev1"))
	d.answerMethods(b)
	waitNode(b, c, "dev1", "a")
	// The same call made on A itself: the same-run baseline.
	b.Run("local/callers=8", func(b *testing.B) {
		roundTrips(b, 8, func() error {
			_, err := a.invoke("dev1", "echo", `{"n":1}`, 5*time.Second)
			return err
		})
	})
	var full float64 // calls a second with 8 callers, all as fast as they can
	for _, callers := range []int{1, 8} {
		b.Run("transport/callers="+strconv.Itoa(callers), func(b *testing.B) {
			roundTrips(b, callers, func() error {
				_, _, err := bi.bus.InvokeMethod(context.Background(), "dev1", "echo", json.RawMessage(`{"n":1}`), 5*time.Second)
				return err
			})
		})
		b.Run("invoke/callers="+strconv.Itoa(callers), func(b *testing.B) {
			start := time.Now()
			roundTrips(b, callers, func() error {
				_, err := bi.invoke("dev1", "echo", `{"n":1}`, 5*time.Second)
				return err
			})
			if callers == 8 && b.N > 1 {
				full = float64(b.N) / time.Since(start).Seconds()
			}
		})
	}
	// Half load: calls started at half the rate 8 callers reached, each on
	// its own goroutine, so that a slow answer does not slow the rate (an
	// open loop, as operators and jobs call).
	b.Run("invoke/half-load", func(b *testing.B) {
		if full == 0 {
			b.Skip("the full-load run measured no rate")
		}
		every := time.Duration(float64(time.Second) / (full / 2))
		var (
			mu  sync.Mutex
			lat []time.Duration
			wg  sync.WaitGroup
		)
		tick := time.NewTicker(every)
		defer tick.Stop()
		b.ResetTimer()
		for range b.N {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if _, err := bi.invoke("dev1", "echo", `{"n":1}`, 5*time.Second); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.StopTimer()
		reportLatency(b, lat)
		b.ReportMetric(full/2, "calls/s")
	})
}

// roundTrips runs call b.N times over callers goroutines and reports the
// latency percentiles.
func roundTrips(b *testing.B, callers int, call func() error) {
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	next := make(chan struct{})
	b.ResetTimer()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				start := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the p50 and p99 of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkLiveRelay is how many stored messages a second one instance's
// hub hands to another's through a real nats-server (batches of 100
// messages of 3 readings from 10 devices, as the ingest writer commits
// them), and the bytes each costs on the bus: the fan-out cost of a
// cluster, paid once per other instance. Every instance gets the
// messages' activity; only one that follows a device (a browser on its
// page) gets its message events too.
func BenchmarkLiveRelay(b *testing.B) {
	for _, followed := range []bool{false, true} {
		b.Run("followed="+strconv.FormatBool(followed), func(b *testing.B) { benchRelay(b, followed) })
	}
}

func benchRelay(b *testing.B, followed bool) {
	c := newCluster(b)
	a, other := c.instance("a"), c.instance("b")
	const batch, devices = 100, 10
	if followed {
		for i := range devices {
			events := other.follow(b, "/devices/dev-"+strconv.Itoa(i))
			go func() {
				for range events {
				}
			}()
		}
	}
	recs := make([]telemetry.Record, batch)
	now := time.Now()
	for i := range recs {
		recs[i] = telemetry.Record{
			Message: telemetry.Message{DeviceID: "dev-" + strconv.Itoa(i%devices), MessageID: "m" + strconv.Itoa(i),
				Body: []byte(`{"temperature":21.5,"humidity":40.25,"pressure":1013.2,"site":"north-field-7"}`), EnqueuedAt: now},
			Time:     now,
			Readings: []telemetry.Reading{{Metric: "temperature", Value: 21.5}, {Metric: "humidity", Value: 40.25}, {Metric: "pressure", Value: 1013.2}},
		}
	}
	sent := int64(0)
	b.ResetTimer()
	for i := range b.N {
		a.hub.Committed(recs)
		sent += batch
		if i%32 == 31 || i == b.N-1 {
			want := sent
			testkit.WaitFor(b, "B caught up", func() bool { return other.hub.MessagesPerMinute() >= want })
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(a.bus.Stats().BytesSent)/float64(sent), "bus-B/msg")
	if st := a.bus.Stats(); st.RelayDropped > 0 {
		b.Errorf("A dropped %d events", st.RelayDropped)
	}
}

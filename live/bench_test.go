package live

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"fieldhub/telemetry"
)

// BenchmarkFanOut publishes 1,000 events/s to 100 subscribers reading over
// real HTTP, with stalled subscribers that never read, and reports the
// delivery latency (publish → parsed by the client) and the time one publish
// takes. Run with: go test ./live/ -run '^$' -bench FanOut -benchtime 3000x
func BenchmarkFanOut(b *testing.B) {
	const subscribers = 100
	const rate = 1000 // events per second
	h := New(Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeDevice(w, r, "dev1", 0)
	})
	srv := &http.Server{Handler: mux}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		h.Close()
		srv.Close()
	}()
	url := "http://" + ln.Addr().String() + "/"
	st := h.deviceStream("dev1")

	// The stalled subscriber: a raw connection that is never read.
	stalled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer stalled.Close()
	_ = stalled.(*net.TCPConn).SetReadBuffer(1024)
	fmt.Fprintf(stalled, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(b, func() bool { return subs(st) == 1 })
	// And one whose writer is blocked, as when a client's TCP window stays
	// shut: its queue is never drained. (The TCP one above may not fill the
	// kernel's socket buffers during a short run.)
	blocked := h.newSubscriber(nil)
	st.mu.Lock()
	st.subs[blocked] = struct{}{}
	st.mu.Unlock()

	n := b.N
	latencies := make([][]time.Duration, subscribers)
	var wg sync.WaitGroup
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: subscribers}
	client := &http.Client{Transport: tr}
	for i := 0; i < subscribers; i++ {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			lat := make([]time.Duration, 0, n)
			sc := bufio.NewScanner(resp.Body)
			for len(lat) < n && sc.Scan() {
				line := sc.Bytes()
				data, ok := bytes.CutPrefix(line, []byte("data: "))
				if !ok {
					continue
				}
				// data is {"ns":<unix nanoseconds>}
				ns, err := strconv.ParseInt(string(data[6:len(data)-1]), 10, 64)
				if err != nil {
					continue
				}
				lat = append(lat, time.Duration(time.Now().UnixNano()-ns))
			}
			latencies[i] = lat
		}()
	}
	waitFor(b, func() bool { return subs(st) == subscribers+2 })

	type payload struct {
		NS int64 `json:"ns"`
	}
	publish := make([]time.Duration, 0, n)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		h.publishDevice("dev1", EventReading, payload{NS: t0.UnixNano()})
		publish = append(publish, time.Since(t0))
	}
	elapsed := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Log("some subscribers did not receive every event within 30 s")
	}
	b.StopTimer()

	var all []time.Duration
	short := 0
	for _, l := range latencies {
		if len(l) < n {
			short++
		}
		all = append(all, l...)
	}
	slices.Sort(all)
	slices.Sort(publish)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	stalledDropped := h.Dropped()
	b.ReportMetric(float64(pct(all, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(pct(all, 0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(pct(publish, 0.99).Microseconds()), "publish-p99-µs")
	b.Logf("%d events at %.0f/s to %d subscribers + 2 stalled: delivered %d, delivery p50 %s p99 %s max %s; publish p50 %s p99 %s max %s; subscribers short of events %d; stalled subscribers dropped %d",
		n, float64(n)/elapsed.Seconds(), subscribers, len(all),
		pct(all, 0.5), pct(all, 0.99), pct(all, 1), pct(publish, 0.5), pct(publish, 0.99), pct(publish, 1), short, stalledDropped)
}

func subs(st *stream) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.subs)
}

func waitFor(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkCommitted is what publishing costs the ingest writer: batches of
// 1,000 messages from 1,000 different devices (10 readings each), one of the
// devices watched by a subscriber, the fleet stream watched by another.
func BenchmarkCommitted(b *testing.B) {
	h := New(Options{})
	defer h.Close()
	watched := &subscriber{ch: make(chan *event, 1<<20), gone: make(chan struct{}), maxBytes: 1 << 40}
	st := h.deviceStream("dev-0")
	st.mu.Lock()
	st.subs[watched] = struct{}{}
	st.mu.Unlock()
	fleet := &subscriber{ch: make(chan *event, 1<<20), gone: make(chan struct{}), maxBytes: 1 << 40}
	h.fleet.mu.Lock()
	h.fleet.subs[fleet] = struct{}{}
	h.fleet.mu.Unlock()
	go func() { // drain, as the subscribers' connections would
		for {
			select {
			case <-watched.ch:
			case <-fleet.ch:
			case <-h.closed:
				return
			}
		}
	}()
	const devices = 1000
	now := time.Now()
	batch := make([]telemetry.Record, devices)
	for i := range batch {
		rs := make([]telemetry.Reading, 10)
		for k := range rs {
			rs[k] = telemetry.Reading{Metric: fmt.Sprintf("m%d", k), Value: float64(k)}
		}
		batch[i] = telemetry.Record{
			Message: telemetry.Message{ID: int64(i), DeviceID: fmt.Sprintf("dev-%d", i), EnqueuedAt: now,
				Body: []byte(`{"m0":0,"m1":1,"m2":2,"m3":3,"m4":4,"m5":5,"m6":6,"m7":7,"m8":8,"m9":9}`)},
			Time: now, Readings: rs,
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Committed(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/message")
}

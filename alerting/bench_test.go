package alerting_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/alerting"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/live"
	"fieldhub/telemetry"
)

const (
	benchDevices = 1000
	benchRules   = 100
	benchPhase   = 20000 // messages per phase
)

// raiseClock records when each alert of the trigger rule was published,
// to measure how long after its message an alert is raised.
type raiseClock struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (r *raiseClock) PublishAlert(ev live.AlertEvent) {
	if ev.RuleName != "trigger" || ev.Alert.State != alert.StateActive {
		return
	}
	r.mu.Lock()
	if _, ok := r.seen[ev.Alert.DeviceID]; !ok {
		r.seen[ev.Alert.DeviceID] = time.Now()
	}
	r.mu.Unlock()
}

// BenchmarkIngestWithRules is issue 12's evaluation target: the durable
// ingest pipeline's rate for single messages from 1,000 devices without
// alerting, and with alerting evaluating 100 enabled rules (thresholds on
// the messages' metrics scoped by tags, by device and to the fleet, and
// silence rules), in alternating phases of the same run; then how long
// after its message an alert is raised (p99) while the pipeline is loaded.
func BenchmarkIngestWithRules(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	setup, err := db.Open(ctx, path, db.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, benchDevices)
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%04d", i)
		tags := map[string]string{"site": fmt.Sprint("site-", i%10), "kind": fmt.Sprint("kind-", i%4)}
		if _, err := setup.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i], Tags: tags}); err != nil {
			b.Fatal(err)
		}
	}
	setup.Close()
	d, err := db.Open(ctx, path, db.Options{}) // synchronous=FULL
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	tel := dbtest.Telemetry(b, d)
	raised := &raiseClock{seen: map[string]time.Time{}}
	svc, err := alerting.New(ctx, alerting.Config{Store: d, Webhooks: d, Fleet: d, Audit: d, Live: raised, Latest: tel,
		// A log line between the benchmark's name and its figures hides them
		// from bench/summary.
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close(context.Background()) })
	for i := range benchRules {
		r := alert.Rule{Name: fmt.Sprint("rule ", i), Severity: alert.Severities()[i%5], Enabled: true}
		switch i % 4 {
		case 0:
			r.Scope.Tags = map[string]string{"site": fmt.Sprint("site-", i%10)}
		case 1:
			r.Scope.DeviceID = ids[i]
		case 2:
			r.Scope.Tags = map[string]string{"kind": fmt.Sprint("kind-", i%4), "site": fmt.Sprint("site-", i%10)}
		case 3:
			r.Scope.Fleet = i%8 == 3
			if !r.Scope.Fleet {
				r.Scope.Tags = map[string]string{"kind": "kind-1"}
			}
		}
		if i%10 == 9 {
			r.Condition = alert.Condition{Kind: alert.Silence, Seconds: 3600}
		} else {
			// The messages' metrics, with limits they cross now and then.
			r.Condition = alert.Condition{Kind: alert.Threshold, Metric: fmt.Sprint("m", i%8), Op: alert.Greater, Value: 90 + float64(i%10), ForSeconds: (i % 3) * 30}
		}
		if _, err := svc.CreateRule(ctx, "bench", r); err != nil {
			b.Fatal(err)
		}
	}
	plain := ingest.New(tel, nil, ingest.Options{})
	b.Cleanup(func() { plain.Close(context.Background()) })
	withRules := ingest.New(tel, svc, ingest.Options{})
	b.Cleanup(func() { withRules.Close(context.Background()) })

	var seq atomic.Int64
	body := func(n int64) []byte {
		// Eight metrics; values from 0 to 99, so the rules' limits are
		// crossed and left again.
		return fmt.Appendf(nil, `{"m0":%d,"m1":%d,"m2":%d,"m3":%d,"m4":%d,"m5":%d,"m6":%d,"m7":%d}`,
			n%100, (n*7)%100, (n*13)%100, (n*17)%100, (n*19)%100, (n*23)%100, (n*29)%100, (n*31)%100)
	}
	phase := func(p *ingest.Pipeline) float64 {
		var wg sync.WaitGroup
		var left atomic.Int64
		left.Store(benchPhase)
		start := time.Now()
		for range 128 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					n := seq.Add(1)
					if err := p.Submit(ctx, telemetry.Message{DeviceID: ids[n%benchDevices], Body: body(n)}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return benchPhase / time.Since(start).Seconds()
	}
	phase(plain) // warm up: every device's metrics exist
	phase(withRules)

	b.ResetTimer()
	var without, with []float64
	for i := range b.N {
		// Alternate which goes first: the second phase of a pair pays for
		// the first's writes (WAL checkpoints, dirty pages) whatever it is.
		if i%2 == 0 {
			without = append(without, phase(plain))
			with = append(with, phase(withRules))
		} else {
			with = append(with, phase(withRules))
			without = append(without, phase(plain))
		}
	}
	b.StopTimer()
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	mw, mr := median(without), median(with)
	b.ReportMetric(mw, "msgs/s-no-rules")
	b.ReportMetric(mr, "msgs/s-100-rules")
	b.ReportMetric(mr/mw, "ratio")
	b.ReportMetric(float64(svc.Dropped()), "dropped")

	// Raise latency under load: a trigger rule on a metric only some
	// messages carry; each device's first such message raises its alert.
	if _, err := svc.CreateRule(ctx, "bench", alert.Rule{Name: "trigger", Severity: alert.Critical, Enabled: true, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "trigger", Op: alert.Greater, Value: 0}}); err != nil {
		b.Fatal(err)
	}
	loadDone := make(chan struct{})
	go func() { phase(withRules); close(loadDone) }()
	sent := make(map[string]time.Time, 200)
	for i := range 200 {
		id := ids[i*5]
		sent[id] = time.Now()
		if err := withRules.Submit(ctx, telemetry.Message{DeviceID: id, Body: []byte(`{"trigger":1}`)}); err != nil {
			b.Fatal(err)
		}
	}
	<-loadDone
	deadline := time.Now().Add(10 * time.Second)
	for {
		raised.mu.Lock()
		n := len(raised.seen)
		raised.mu.Unlock()
		if n == len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lat []float64
	raised.mu.Lock()
	for id, at := range sent {
		if got, ok := raised.seen[id]; ok {
			lat = append(lat, got.Sub(at).Seconds()*1000)
		}
	}
	raised.mu.Unlock()
	if len(lat) != len(sent) {
		b.Fatalf("%d of %d trigger alerts raised", len(lat), len(sent))
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)*99/100], "raise-p99-ms")
}

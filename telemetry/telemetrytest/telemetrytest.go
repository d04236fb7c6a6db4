// Package telemetrytest is the conformance suite of telemetry.Storage: the
// telemetry engine's behaviour, run on a storage implementation. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) { telemetrytest.Run(t, newBackend) }
package telemetrytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Backend is one database under test and what the suite needs beyond
// telemetry.Storage to drive it: the devices belong to the registry.
type Backend struct {
	// Open connects to the database and returns its storage and a function
	// that closes the connection. Called again after that, it opens the
	// same data: the suite closes without a checkpoint to simulate a crash.
	Open func(t *testing.T) (telemetry.Storage, func())
	// CreateDevice registers a device. A device created again after
	// DeleteDevice must differ from the one before in its DeviceRow.
	CreateDevice func(t *testing.T, deviceID string)
	// DeleteDevice deletes a device, and with it its messages and metrics.
	DeleteDevice func(t *testing.T, deviceID string)
	// LastActivity reads a device's stored last activity; zero when none.
	LastActivity func(t *testing.T, deviceID string) time.Time
}

// Run runs the suite; newBackend returns a fresh, empty database each call.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *hub)
	}{
		{"AppendThenQuery", testAppendThenQuery},
		{"MessageFields", testMessageFields},
		{"MessageFieldsInOneBatch", testMessageFieldsInOneBatch},
		{"MixedLayoutsRecover", testMixedLayoutsRecover},
		{"MessagePaging", testMessagePaging},
		{"MessagesAcrossIndexSteps", testMessagesAcrossIndexSteps},
		{"DeleteDeviceAcrossIndexSteps", testDeleteDeviceAcrossIndexSteps},
		{"PruneAcrossIndexSteps", testPruneAcrossIndexSteps},
		{"RecoverRebuildsOpenChunks", testRecoverRebuildsOpenChunks},
		{"CrashAfterOneCheckpointStep", func(t *testing.T, h *hub) { testCrashDuringCheckpointCycle(t, h, 1) }},
		{"CrashAfterThreeCheckpointSteps", func(t *testing.T, h *hub) { testCrashDuringCheckpointCycle(t, h, 3) }},
		{"CrashAfterWholeCheckpointCycle", func(t *testing.T, h *hub) { testCrashDuringCheckpointCycle(t, h, 1000) }},
		{"DeletedDevice", testDeletedDevice},
		{"DeletedDeviceOutsideTheBatch", testDeletedDeviceOutsideTheBatch},
		{"AppendIDs", testAppendIDs},
		{"Prune", testPrune},
		{"PruneKeepsUnfoldedMessages", testPruneKeepsUnfoldedMessages},
		{"ConcurrentQueriesDuringAppend", testConcurrentQueries},
		{"MetricsPerDeviceAreBounded", testMetricsPerDeviceAreBounded},
		{"MetricCapLoggedOncePerDevice", testMetricCapLoggedOnce},
		{"LastActivity", testLastActivity},
		{"LastActivityAfterHangUp", testLastActivityAfterHangUp},
		{"RollupsMatchReadings", testRollupsMatchReadings},
		{"RollupsDuringConcurrentCheckpoints", testRollupsConcurrent},
		{"PruneRollups", testPruneRollups},
		{"TierForTheRange", testTierForTheRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, &hub{t: t, b: newBackend(t)})
		})
	}
}

// T0 is the suite's clock: every store it opens sees this time.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// hub is the engine on the backend under test, opened and reopened.
type hub struct {
	t     *testing.T
	b     Backend
	close func()
	logs  logBuffer
	now   time.Time // the store's clock; T0 when zero
	// retention is the store's (zero values: the defaults).
	retention telemetry.Retention
}

// open opens the store on the backend, creating devices first. A store
// opened before must have been closed (crash) first.
func (h *hub) open(devices ...string) *telemetry.Store {
	h.t.Helper()
	storage, closeFn := h.b.Open(h.t)
	h.close = sync.OnceFunc(closeFn)
	h.t.Cleanup(h.close)
	for _, id := range devices {
		h.b.CreateDevice(h.t, id)
	}
	s, err := telemetry.Open(context.Background(), storage, telemetry.Options{
		Logger:    slog.New(slog.NewTextHandler(&h.logs, nil)),
		Now:       func() time.Time { return h.clock() },
		Retention: h.retention,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *hub) clock() time.Time {
	if h.now.IsZero() {
		return T0
	}
	return h.now
}

// crash closes the database without a checkpoint and opens it again.
func (h *hub) crash() *telemetry.Store {
	h.t.Helper()
	h.close()
	return h.open()
}

// record builds a message whose body holds values.
func record(device string, at time.Time, values map[string]float64) telemetry.Record {
	body, _ := json.Marshal(values)
	return telemetry.NewRecord(telemetry.Message{DeviceID: device, EnqueuedAt: at, Body: body, AuthMethod: "sas-primary"})
}

func mustAppend(t *testing.T, s *telemetry.Store, recs ...telemetry.Record) []int64 {
	t.Helper()
	ids, err := s.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func mustCheckpoint(t *testing.T, s *telemetry.Store) telemetry.CheckpointStats {
	t.Helper()
	st, err := s.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// countReadings counts and sums a metric's raw readings around T0.
func countReadings(t *testing.T, s *telemetry.Store, device, metric string) (n int, sum float64) {
	t.Helper()
	err := s.RawReadings(context.Background(), device, metric, T0.Add(-24*time.Hour), T0.Add(72*time.Hour), func(_ time.Time, v float64) error {
		n++
		sum += v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, sum
}

// countRollups adds up a metric's rollup rows of a tier around T0.
func countRollups(t *testing.T, s *telemetry.Store, device, metric string, tier telemetry.Tier) (n int, sum float64) {
	t.Helper()
	err := s.RollupReadings(context.Background(), device, metric, tier, T0.Add(-24*time.Hour), T0.Add(72*time.Hour), func(r telemetry.Rollup) error {
		n += r.N
		sum += r.Sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, sum
}

func mustMessages(t *testing.T, s *telemetry.Store, device string, f telemetry.MessageFilter) []telemetry.Message {
	t.Helper()
	msgs, err := s.Messages(context.Background(), device, f)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// logBuffer collects log lines for a test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testAppendThenQuery(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1", "dev2")
	var recs []telemetry.Record
	for i := range 2500 { // more than two chunks
		recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Second), map[string]float64{"temp": 20 + float64(i%10)/10, "hum": 50}))
	}
	ids := mustAppend(t, s, recs...)
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing: %d then %d", ids[i-1], ids[i])
		}
	}
	metrics, err := s.Metrics(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 2 || metrics[0].Name != "hum" || metrics[1].Name != "temp" {
		t.Fatalf("metrics = %+v, want hum and temp", metrics)
	}
	if got, want := metrics[1].LastTime, T0.Add(2499*time.Second); !got.Equal(want) || metrics[1].LastValue != 20.9 {
		t.Errorf("temp last = %v at %v, want 20.9 at %v", metrics[1].LastValue, got, want)
	}
	// Before and after a checkpoint the answers are the same.
	for _, phase := range []string{"in memory", "checkpointed"} {
		t.Run(phase, func(t *testing.T) {
			if phase == "checkpointed" {
				if st := mustCheckpoint(t, s); st.Watermark != ids[len(ids)-1] || st.Chunks != 6 {
					t.Errorf("checkpoint = %+v, want watermark %d and 6 chunks", st, ids[len(ids)-1])
				}
			}
			if n, _ := countReadings(t, s, "dev1", "temp"); n != 2500 {
				t.Errorf("raw readings = %d, want 2500", n)
			}
			d, err := s.Readings(ctx, "dev1", "temp", T0, T0.Add(2500*time.Second-time.Millisecond), 10)
			if err != nil {
				t.Fatal(err)
			}
			if d.Tier != telemetry.TierRaw {
				t.Errorf("read from %s, want raw readings", d.Tier)
			}
			buckets := d.Buckets
			if len(buckets) != 10 {
				t.Fatalf("got %d buckets, want 10", len(buckets))
			}
			for i, b := range buckets {
				if want := T0.Add(time.Duration(i) * 250 * time.Second); b.Count != 250 || b.Min != 20 || b.Max != 20.9 || !b.Time.Equal(want) {
					t.Errorf("bucket %d = %+v, want 250 readings from 20 to 20.9 at %v", i, b, want)
				}
			}
		})
	}
	if _, err := s.Readings(ctx, "dev1", "nope", T0, T0, 10); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("readings of unknown metric: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Metrics(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("metrics of unknown device: err = %v, want ErrNotFound", err)
	}
	var inv *storage.InvalidError
	if _, err := s.Readings(ctx, "dev1", "temp", T0, T0, 0); !errors.As(err, &inv) {
		t.Errorf("points=0: err = %v, want InvalidError", err)
	}
}

// Every field of a message comes back as it was stored.
func testMessageFields(t *testing.T, h *hub) {
	s := h.open("dev1")
	full := telemetry.Message{
		DeviceID: "dev1", MessageID: "m-1", CorrelationID: "c-1", ContentType: "application/json",
		ContentEncoding: "utf-8", To: "/devices/dev1/messages/events", UserID: "u-1",
		Properties: map[string]string{"alert": "yes", "ünïcode": "✓"}, Body: []byte{0, 1, 0xff, '{'},
		AuthMethod: "x509", EnqueuedAt: T0.Add(1234 * time.Millisecond),
	}
	bare := telemetry.Message{DeviceID: "dev1", AuthMethod: "sas-primary", EnqueuedAt: T0.Add(time.Second)}
	ids := mustAppend(t, s, telemetry.NewRecord(full), telemetry.NewRecord(bare))
	got := mustMessages(t, s, "dev1", telemetry.MessageFilter{})
	if len(got) != 2 {
		t.Fatalf("%d messages, want 2", len(got))
	}
	full.ID, bare.ID = ids[0], ids[1]
	for i, want := range []telemetry.Message{bare, full} {
		g := got[i]
		if g.ID != want.ID || g.DeviceID != want.DeviceID || g.MessageID != want.MessageID || g.CorrelationID != want.CorrelationID ||
			g.ContentType != want.ContentType || g.ContentEncoding != want.ContentEncoding || g.To != want.To ||
			g.UserID != want.UserID || g.AuthMethod != want.AuthMethod || !g.EnqueuedAt.Equal(want.EnqueuedAt) ||
			!bytes.Equal(g.Body, want.Body) || !maps.Equal(g.Properties, want.Properties) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	if got[0].Properties != nil {
		t.Errorf("a message without properties came back with %v, want nil", got[0].Properties)
	}
}

// A batch larger than one INSERT whose messages carry different sets of
// fields, in runs and alone (a storage may write them in different
// statements): every returned id is the stored row of that very message,
// with its fields.
func testMessageFieldsInOneBatch(t *testing.T, h *hub) {
	s := h.open("dev1")
	var msgs []telemetry.Message
	for i := range 200 {
		m := telemetry.Message{DeviceID: "dev1", AuthMethod: "sas-primary", EnqueuedAt: T0.Add(time.Duration(i) * time.Millisecond),
			Body: fmt.Appendf(nil, `{"n":%d}`, i)}
		switch {
		case i%13 == 3 || (i >= 100 && i < 170):
			m.MessageID, m.CorrelationID, m.ContentEncoding = fmt.Sprint("m-", i), "c", "utf-8"
			m.To, m.UserID, m.Properties = "/devices/dev1/messages/events", "u", map[string]string{"i": fmt.Sprint(i)}
		case i%5 == 0:
			m.ContentType = "application/json"
		case i%11 == 0:
			m.Properties = map[string]string{"only": "properties"}
		}
		msgs = append(msgs, m)
	}
	recs := make([]telemetry.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = telemetry.NewRecord(m)
	}
	ids := mustAppend(t, s, recs...)
	stored := map[int64]telemetry.Message{}
	for _, g := range mustMessages(t, s, "dev1", telemetry.MessageFilter{Limit: telemetry.MaxMessagePage}) {
		stored[g.ID] = g
	}
	if len(stored) != len(msgs) {
		t.Fatalf("%d messages stored, want %d", len(stored), len(msgs))
	}
	for i, want := range msgs {
		g, ok := stored[ids[i]]
		if !ok || g.MessageID != want.MessageID || g.CorrelationID != want.CorrelationID || g.ContentType != want.ContentType ||
			g.ContentEncoding != want.ContentEncoding || g.To != want.To || g.UserID != want.UserID ||
			g.AuthMethod != want.AuthMethod || !g.EnqueuedAt.Equal(want.EnqueuedAt) || !bytes.Equal(g.Body, want.Body) ||
			!maps.Equal(g.Properties, want.Properties) || (want.Properties == nil) != (g.Properties == nil) {
			t.Errorf("message %d, id %d:\n got %+v\nwant %+v", i, ids[i], g, want)
		}
	}
}

// Commits of two devices' messages, some with optional system properties
// and some without, interleaved (a storage may log the two kinds in
// statements of their own within one commit): each device lists its own
// messages, and recovery, which replays the log by id, rebuilds every
// reading of each device from the right message.
func testMixedLayoutsRecover(t *testing.T, h *hub) {
	s := h.open("dev1", "dev2")
	want := map[string]int{}
	sum := map[string]float64{}
	for c := range 3 {
		var recs []telemetry.Record
		for i := range 90 {
			dev := []string{"dev1", "dev2"}[(i/3)%2]
			n := c*1000 + i
			m := telemetry.Message{DeviceID: dev, AuthMethod: "sas-primary", EnqueuedAt: T0.Add(time.Duration(n) * time.Millisecond),
				Body: fmt.Appendf(nil, `{"n":%d}`, n)}
			if (i+c)%4 == 0 || i%7 == 0 {
				m.MessageID, m.Properties = fmt.Sprint("m-", n), map[string]string{"n": fmt.Sprint(n)}
			}
			recs = append(recs, telemetry.NewRecord(m))
			want[dev]++
			sum[dev] += float64(n)
		}
		mustAppend(t, s, recs...)
	}
	check := func(when string, s *telemetry.Store) {
		t.Helper()
		for _, dev := range []string{"dev1", "dev2"} {
			if n, got := countReadings(t, s, dev, "n"); n != want[dev] || got != sum[dev] {
				t.Errorf("%s: %s has %d readings summing to %v, want %d summing to %v", when, dev, n, got, want[dev], sum[dev])
			}
			for _, m := range mustMessages(t, s, dev, telemetry.MessageFilter{Limit: telemetry.MaxMessagePage}) {
				var body struct{ N int }
				if err := json.Unmarshal(m.Body, &body); err != nil || m.DeviceID != dev ||
					(m.MessageID != "" && (m.MessageID != fmt.Sprint("m-", body.N) || m.Properties["n"] != fmt.Sprint(body.N))) {
					t.Errorf("%s: %s lists message %+v (%v)", when, dev, m, err)
				}
			}
		}
	}
	check("before the crash", s)
	check("after the crash", h.crash())
}

func testMessagePaging(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1", "dev2")
	var recs []telemetry.Record
	for i := range 120 {
		dev := []string{"dev1", "dev2"}[i%2]
		recs = append(recs, record(dev, T0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
	}
	ids := mustAppend(t, s, recs...)
	var seen []int64
	for f := (telemetry.MessageFilter{Limit: 25}); ; {
		page := mustMessages(t, s, "dev1", f)
		for _, m := range page {
			seen = append(seen, m.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.Before = page[len(page)-1].ID
	}
	if len(seen) != 60 {
		t.Fatalf("paged through %d messages of dev1, want 60", len(seen))
	}
	for i, id := range seen { // newest first: dev1 sent the even ones
		if want := ids[len(ids)-2-2*i]; id != want {
			t.Fatalf("message %d of the pages has id %d, want %d", i, id, want)
		}
	}
	if got := mustMessages(t, s, "dev1", telemetry.MessageFilter{}); len(got) != 50 {
		t.Errorf("default page has %d messages, want 50", len(got))
	}
	var inv *storage.InvalidError
	for _, f := range []telemetry.MessageFilter{{Limit: -1}, {Limit: telemetry.MaxMessagePage + 1}, {Before: -5}} {
		if _, err := s.Messages(ctx, "dev1", f); !errors.As(err, &inv) {
			t.Errorf("filter %+v: err = %v, want InvalidError", f, err)
		}
	}
	if _, err := s.Messages(ctx, "nope", telemetry.MessageFilter{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("messages of unknown device: err = %v, want ErrNotFound", err)
	}
	h.b.CreateDevice(t, "dev3")
	if got := mustMessages(t, s, "dev3", telemetry.MessageFilter{}); len(got) != 0 {
		t.Errorf("dev3 has messages %v, want none", got)
	}
}

func testRecoverRebuildsOpenChunks(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1")
	send := func(s *telemetry.Store, from, to int) {
		var recs []telemetry.Record
		for i := from; i < to; i++ {
			recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
		}
		mustAppend(t, s, recs...)
	}
	send(s, 0, 1500)
	mustCheckpoint(t, s)
	send(s, 1500, 3700) // seals two more chunks that are only in memory

	s2 := h.crash()
	n, sum := countReadings(t, s2, "dev1", "n")
	if want := 3700 * 3699 / 2; n != 3700 || sum != float64(want) {
		t.Errorf("after restart: %d readings summing to %v, want 3700 summing to %d", n, sum, want)
	}
	metrics, err := s2.Metrics(ctx, "dev1")
	if err != nil || len(metrics) != 1 || metrics[0].LastValue != 3699 {
		t.Errorf("after restart metrics = %+v, %v; want n = 3699", metrics, err)
	}
	// A second crash after more data, with a checkpoint in between, still adds up.
	send(s2, 3700, 4000)
	mustCheckpoint(t, s2)
	send(s2, 4000, 4100)
	s3 := h.crash()
	if n, sum := countReadings(t, s3, "dev1", "n"); n != 4100 || sum != float64(4100*4099/2) {
		t.Errorf("after second restart: %d readings summing to %v, want 4100 summing to %d", n, sum, 4100*4099/2)
	}
}

// A crash in the middle of a checkpoint cycle, after some steps (the cycle
// may finish sooner) with messages committed between them, loses and
// doubles no reading: some series are stored through the cycle's start,
// the others only through the previous cycle.
func testCrashDuringCheckpointCycle(t *testing.T, h *hub, steps int) {
	ctx := context.Background()
	devices := []string{"dev1", "dev2", "dev3", "dev4"}
	const metrics = 20
	type total struct {
		n   int
		sum float64
	}
	want := map[string]total{}
	next := 0
	send := func(s *telemetry.Store, count int) {
		t.Helper()
		var recs []telemetry.Record
		for range count {
			dev := devices[next%len(devices)]
			values := map[string]float64{}
			for m := range metrics {
				values[fmt.Sprintf("m%02d", m)] = float64(next)
			}
			recs = append(recs, record(dev, T0.Add(time.Duration(next)*time.Second), values))
			w := want[dev]
			w.n++
			w.sum += float64(next)
			want[dev] = w
			next++
		}
		mustAppend(t, s, recs...)
	}
	check := func(s *telemetry.Store, when string) {
		t.Helper()
		for _, dev := range devices {
			for m := range metrics {
				name := fmt.Sprintf("m%02d", m)
				if n, sum := countReadings(t, s, dev, name); n != want[dev].n || sum != want[dev].sum {
					t.Fatalf("%s: %s/%s has %d readings summing to %v, want %d summing to %v", when, dev, name, n, sum, want[dev].n, want[dev].sum)
				}
				for _, tier := range []telemetry.Tier{telemetry.TierMinute, telemetry.TierHour} {
					if n, sum := countRollups(t, s, dev, name, tier); n != want[dev].n || sum != want[dev].sum {
						t.Fatalf("%s: %s/%s's %s rollups count %d readings summing to %v, want %d summing to %v", when, dev, name, tier, n, sum, want[dev].n, want[dev].sum)
					}
				}
			}
		}
	}
	crashMidCycle := func(s *telemetry.Store) *telemetry.Store {
		t.Helper()
		for range steps {
			done, _, err := s.CheckpointStep(ctx, 30)
			if err != nil {
				t.Fatal(err)
			}
			send(s, 8) // committed while the cycle is in progress
			check(s, "during the cycle")
			if done {
				break
			}
		}
		return h.crash() // the cycle is not finished
	}
	s := h.open(devices...)
	send(s, 2000)
	mustCheckpoint(t, s)
	send(s, 4000) // seals chunks only in memory
	s2 := crashMidCycle(s)
	check(s2, "after the first crash")
	// Again from the recovered state, whose series are stored through
	// different messages.
	send(s2, 3000)
	s3 := crashMidCycle(s2)
	check(s3, "after the second crash")
	mustCheckpoint(t, s3)
	check(h.crash(), "after a clean checkpoint")
}

// A device deleted while its series are in memory: its messages are
// refused, its series dropped at the next checkpoint, and a device created
// again under its id starts from nothing.
func testDeletedDevice(t *testing.T, h *hub) {
	s := h.open("dev1", "dev2")
	mustAppend(t, s, record("dev1", T0, map[string]float64{"a": 1}), record("dev2", T0, map[string]float64{"a": 2}))
	h.b.DeleteDevice(t, "dev1")
	ids := mustAppend(t, s, record("dev1", T0.Add(time.Second), map[string]float64{"a": 3}), record("dev2", T0.Add(time.Second), map[string]float64{"a": 4}))
	if ids[0] != 0 || ids[1] == 0 {
		t.Errorf("ids = %v, want 0 for the deleted device and an id for dev2", ids)
	}
	mustCheckpoint(t, s) // the stale series of dev1 is dropped, not an error
	h.b.CreateDevice(t, "dev1")
	mustAppend(t, s, record("dev1", T0.Add(2*time.Second), map[string]float64{"a": 5}))
	if n, sum := countReadings(t, s, "dev1", "a"); n != 1 || sum != 5 {
		t.Errorf("recreated dev1: %d readings summing to %v, want 1 reading of 5", n, sum)
	}
	if got := mustMessages(t, s, "dev1", telemetry.MessageFilter{}); len(got) != 1 {
		t.Errorf("recreated dev1 has %d messages, want the 1 sent since", len(got))
	}
	if n, sum := countReadings(t, s, "dev2", "a"); n != 2 || sum != 6 {
		t.Errorf("dev2: %d readings summing to %v, want 2 summing to 6", n, sum)
	}
	// Deleted after a checkpoint: metrics and chunks go with the device.
	mustCheckpoint(t, s)
	h.b.DeleteDevice(t, "dev2")
	h.b.CreateDevice(t, "dev2")
	s2 := h.crash()
	if metrics, err := s2.Metrics(context.Background(), "dev2"); err != nil || len(metrics) != 0 {
		t.Errorf("dev2 created again has metrics %+v (%v), want none", metrics, err)
	}
}

// A device deleted (and another created again) while the batches that
// followed named other devices only: its cached row must still be checked
// once it sends again, however many commits passed in between.
func testDeletedDeviceOutsideTheBatch(t *testing.T, h *hub) {
	s := h.open("dev1", "dev2", "dev3")
	mustAppend(t, s, record("dev1", T0, map[string]float64{"a": 1}), record("dev2", T0, map[string]float64{"a": 2}),
		record("dev3", T0, map[string]float64{"a": 3}))
	mustAppend(t, s, record("dev1", T0.Add(time.Second), map[string]float64{"a": 1}))
	h.b.DeleteDevice(t, "dev2")
	h.b.DeleteDevice(t, "dev3")
	h.b.CreateDevice(t, "dev3")
	for i := range 3 {
		mustAppend(t, s, record("dev1", T0.Add(time.Duration(2+i)*time.Second), map[string]float64{"a": 1}))
	}
	ids := mustAppend(t, s, record("dev2", T0.Add(5*time.Second), map[string]float64{"a": 4}),
		record("dev3", T0.Add(5*time.Second), map[string]float64{"a": 5}))
	if ids[0] != 0 || ids[1] == 0 {
		t.Errorf("ids = %v, want 0 for the deleted dev2 and an id for dev3 created again", ids)
	}
	if got := mustMessages(t, s, "dev3", telemetry.MessageFilter{}); len(got) != 1 {
		t.Errorf("dev3 created again has %d messages, want the 1 sent since", len(got))
	}
	if n, sum := countReadings(t, s, "dev3", "a"); n != 1 || sum != 5 {
		t.Errorf("dev3 created again: %d readings summing to %v, want 1 reading of 5", n, sum)
	}
}

// A batch larger than one INSERT, interleaving devices and a deleted one:
// every returned id must be the stored row of that very message.
func testAppendIDs(t *testing.T, h *hub) {
	s := h.open("dev1", "dev2", "dev3")
	mustAppend(t, s, record("dev2", T0, map[string]float64{"a": 1})) // cache dev2's row
	h.b.DeleteDevice(t, "dev2")
	var recs []telemetry.Record
	for i := range 150 {
		dev := []string{"dev1", "dev2", "dev3"}[i%3]
		recs = append(recs, record(dev, T0.Add(time.Duration(i)*time.Millisecond), map[string]float64{"n": float64(i)}))
	}
	ids := mustAppend(t, s, recs...)
	for _, dev := range []string{"dev1", "dev3"} {
		stored := mustMessages(t, s, dev, telemetry.MessageFilter{Limit: telemetry.MaxMessagePage})
		byID := map[int64]telemetry.Message{}
		for _, m := range stored {
			byID[m.ID] = m
		}
		for i, r := range recs {
			if r.Message.DeviceID != dev {
				continue
			}
			got, ok := byID[ids[i]]
			if !ok || string(got.Body) != string(r.Message.Body) || !got.EnqueuedAt.Equal(r.Message.EnqueuedAt) {
				t.Errorf("message %d of %s: id %d holds %q at %v, want %q at %v", i, dev, ids[i], got.Body, got.EnqueuedAt, r.Message.Body, r.Message.EnqueuedAt)
			}
		}
		if len(stored) != 50 {
			t.Errorf("%s: %d messages stored, want 50", dev, len(stored))
		}
	}
	for i, r := range recs {
		if r.Message.DeviceID == "dev2" && ids[i] != 0 {
			t.Errorf("message %d of the deleted dev2: id %d, want 0", i, ids[i])
		}
	}
}

func testPrune(t *testing.T, h *hub) {
	ctx := context.Background()
	// Messages and raw readings kept 1000 minutes as of T0+3000 min; the
	// rollups for ever (testPruneRollups prunes them).
	h.now = T0.Add(3000 * time.Minute)
	h.retention = telemetry.Retention{Messages: 1000 * time.Minute, Raw: 1000 * time.Minute, Minutes: -1, Hours: -1}
	s := h.open("dev1")
	var recs []telemetry.Record
	for i := range 3000 {
		recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Minute), map[string]float64{"x": 1}))
	}
	mustAppend(t, s, recs...)
	mustCheckpoint(t, s)
	cutoff := T0.Add(2000 * time.Minute)
	total := 0
	for {
		n, more, err := s.Prune(ctx, h.now, 500)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if !more {
			break
		}
	}
	if total != 2000+2 { // 2000 messages and the first two full chunks
		t.Errorf("pruned %d rows, want 2002", total)
	}
	left := mustMessages(t, s, "dev1", telemetry.MessageFilter{Limit: telemetry.MaxMessagePage})
	if len(left) != 1000 || left[len(left)-1].EnqueuedAt.Before(cutoff) {
		t.Errorf("%d messages left, oldest at %v; want 1000 from %v on", len(left), left[len(left)-1].EnqueuedAt, cutoff)
	}
	if n, _ := countReadings(t, s, "dev1", "x"); n != 1000 {
		t.Errorf("%d readings left, want the 1000 of the last chunk", n)
	}
	var inv *storage.InvalidError
	if _, _, err := s.Prune(ctx, h.now, 0); !errors.As(err, &inv) {
		t.Errorf("limit 0: err = %v, want InvalidError", err)
	}
}

// Messages whose readings are only in memory stay, however old: recovery
// needs them.
func testPruneKeepsUnfoldedMessages(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1")
	mustAppend(t, s, record("dev1", T0, map[string]float64{"x": 1}), record("dev1", T0.Add(time.Minute), map[string]float64{"x": 2}))
	if n, _, err := s.Prune(ctx, T0.Add(8*24*time.Hour), 100); err != nil || n != 0 {
		t.Errorf("prune before a checkpoint deleted %d rows (%v), want 0", n, err)
	}
	s2 := h.crash()
	if n, sum := countReadings(t, s2, "dev1", "x"); n != 2 || sum != 3 {
		t.Errorf("after a crash: %d readings summing to %v, want 2 summing to 3", n, sum)
	}
}

func testConcurrentQueries(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1")
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			var last int
			n := 0
			err := s.RawReadings(ctx, "dev1", "n", T0.Add(-time.Hour), T0.Add(24*time.Hour), func(_ time.Time, v float64) error {
				n++
				last = int(v)
				return nil
			})
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				errc <- err
				return
			}
			// Readings arrive in order, so a consistent view is a gap-free prefix.
			if n > 0 && last != n-1 {
				errc <- fmt.Errorf("saw %d readings ending with %d: a chunk is missing or doubled", n, last)
				return
			}
		}
	}()
	for batch := range 30 {
		var recs []telemetry.Record
		for i := batch * 100; i < batch*100+100; i++ {
			recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
		}
		mustAppend(t, s, recs...)
		if batch%7 == 0 {
			mustCheckpoint(t, s)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func testMetricsPerDeviceAreBounded(t *testing.T, h *hub) {
	s := h.open("dev1")
	var recs []telemetry.Record
	for i := range telemetry.MaxMetricsPerDevice + 5 {
		recs = append(recs, record("dev1", T0, map[string]float64{fmt.Sprintf("m%05d", i): 1}))
	}
	if ids := mustAppend(t, s, recs...); ids[len(ids)-1] == 0 {
		t.Fatal("the message over the metric limit was not stored")
	}
	check := func(s *telemetry.Store) {
		t.Helper()
		metrics, err := s.Metrics(context.Background(), "dev1")
		if err != nil || len(metrics) != telemetry.MaxMetricsPerDevice {
			t.Errorf("%d metrics (%v), want %d", len(metrics), err, telemetry.MaxMetricsPerDevice)
		}
	}
	check(s)
	check(h.crash()) // recovery does not create the refused ones either
}

// A device whose new metric names are dropped at MaxMetricsPerDevice is
// logged once, not once per message.
func testMetricCapLoggedOnce(t *testing.T, h *hub) {
	s := h.open("dev1", "dev2")
	fill := func(device string, from, n int) {
		var recs []telemetry.Record
		for i := from; i < from+n; i++ {
			recs = append(recs, record(device, T0, map[string]float64{fmt.Sprintf("m%05d", i): 1}))
		}
		mustAppend(t, s, recs...)
	}
	fill("dev1", 0, telemetry.MaxMetricsPerDevice)
	fill("dev2", 0, telemetry.MaxMetricsPerDevice-1)
	if strings.Contains(h.logs.String(), "limit") {
		t.Fatalf("logged before any name was dropped:\n%s", h.logs.String())
	}
	for round := range 5 {
		fill("dev1", telemetry.MaxMetricsPerDevice+10*round, 10) // ten new names a round, each dropped
		fill("dev2", telemetry.MaxMetricsPerDevice+10*round, 10) // the first fits, the rest are dropped
	}
	logs := h.logs.String()
	for _, id := range []string{"dev1", "dev2"} {
		if n := strings.Count(logs, "device="+id+"\n"); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", id, n, logs)
		}
	}
	if !strings.Contains(logs, "limit of 1000 metrics") {
		t.Errorf("log does not name the limit:\n%s", logs)
	}
}

// Last activity is written at once for a device's first message and when it
// moved on by ActivityStep; smaller steps wait for a later batch or the
// checkpoint.
func testLastActivity(t *testing.T, h *hub) {
	s := h.open("dev1")
	steps := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"first message", T0, T0},
		{"within a step", T0.Add(telemetry.ActivityStep / 2), T0},
		{"a step later", T0.Add(telemetry.ActivityStep), T0.Add(telemetry.ActivityStep)},
		{"older message", T0.Add(telemetry.ActivityStep / 2), T0.Add(telemetry.ActivityStep)},
		{"within the next step", T0.Add(telemetry.ActivityStep * 3 / 2), T0.Add(telemetry.ActivityStep)},
	}
	for _, st := range steps {
		mustAppend(t, s, record("dev1", st.at, map[string]float64{"a": 1}))
		if got := h.b.LastActivity(t, "dev1"); !got.Equal(st.want) {
			t.Errorf("%s: last activity = %v, want %v", st.name, got, st.want)
		}
	}
	mustCheckpoint(t, s)
	if got, want := h.b.LastActivity(t, "dev1"), T0.Add(telemetry.ActivityStep*3/2); !got.Equal(want) {
		t.Errorf("after checkpoint: last activity = %v, want %v", got, want)
	}
}

// Once a device's live connection closed (HungUp), which stored a
// disconnect time that only a later activity outweighs (db.Online), the
// activity of its next messages is written at once, not a step later, until
// one from after the hang-up is stored; one committed but not written yet
// when the connection closes is written by HungUp itself. A device sending
// over HTTPS right after its MQTT connection closed was shown offline.
func testLastActivityAfterHangUp(t *testing.T, h *hub) {
	s := h.open("dev1")
	// Every time stays within the first step: no sweep writes anything.
	at := func(twentieths int) time.Time { return T0.Add(telemetry.ActivityStep * time.Duration(twentieths) / 20) }
	steps := []struct {
		name string
		now  time.Time
		sent time.Time // a message sent then; zero: the connection closes at now
		want time.Time
	}{
		{"first message", at(0), at(0), at(0)},
		{"hung up, nothing pending", at(2), time.Time{}, at(0)},
		{"the next message", at(4), at(4), at(4)},
		{"a message after that, within the step", at(6), at(6), at(4)},
		{"hung up with a message pending", at(8), time.Time{}, at(6)},
		{"a message sent before the hang-up, committed after it", at(8), at(7), at(7)},
		{"a message sent after the hang-up", at(9), at(9), at(9)},
		{"then within the step again", at(10), at(10), at(9)},
	}
	for _, st := range steps {
		h.now = st.now
		if st.sent.IsZero() {
			if err := s.HungUp(context.Background(), "dev1"); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		} else {
			mustAppend(t, s, record("dev1", st.sent, map[string]float64{"a": 1}))
		}
		if got := h.b.LastActivity(t, "dev1"); !got.Equal(st.want) {
			t.Errorf("%s: last activity = %v, want %v", st.name, got, st.want)
		}
	}
	// A device this store has not written for, or none at all: nothing to do.
	for _, id := range []string{"dev2", ""} {
		if err := s.HungUp(context.Background(), id); err != nil {
			t.Errorf("HungUp(%q): %v", id, err)
		}
	}
}

// rollupsOf is what the rollups of a tier should hold for readings at
// times ts with values vs.
func rollupsOf(tier telemetry.Tier, ts []time.Time, vs []float64) []telemetry.Rollup {
	w := tier.Width()
	var out []telemetry.Rollup
	at := map[int64]int{}
	for i, t := range ts {
		b := t.UnixMilli() / w * w
		k, ok := at[b]
		if !ok {
			k = len(out)
			at[b] = k
			out = append(out, telemetry.Rollup{Bucket: b, Min: vs[i], Max: vs[i]})
		}
		r := &out[k]
		r.N++
		r.Sum += vs[i]
		r.Min, r.Max = min(r.Min, vs[i]), max(r.Max, vs[i])
	}
	slices.SortFunc(out, func(a, b telemetry.Rollup) int { return int(a.Bucket - b.Bucket) })
	return out
}

// Rollups hold exactly the readings, whether they are in memory, stored,
// both, or rebuilt after a crash in the middle of it; out-of-order
// timestamps fold into their own buckets.
func testRollupsMatchReadings(t *testing.T, h *hub) {
	h.now = T0.Add(4 * time.Hour)
	s := h.open("dev1")
	var ts []time.Time
	var vs []float64
	send := func(s *telemetry.Store, from, to int) {
		t.Helper()
		var recs []telemetry.Record
		for i := from; i < to; i++ {
			at := T0.Add(time.Duration(i) * 7 * time.Second)
			if i%50 == 49 { // now and then a reading from an hour before
				at = at.Add(-time.Hour)
			}
			v := float64(i%13) + 0.5
			ts, vs = append(ts, at), append(vs, v)
			recs = append(recs, record("dev1", at, map[string]float64{"x": v}))
		}
		mustAppend(t, s, recs...)
	}
	check := func(s *telemetry.Store, when string) {
		t.Helper()
		for _, tier := range []telemetry.Tier{telemetry.TierMinute, telemetry.TierHour} {
			var got []telemetry.Rollup
			err := s.RollupReadings(context.Background(), "dev1", "x", tier, T0.Add(-2*time.Hour), T0.Add(4*time.Hour), func(r telemetry.Rollup) error {
				got = append(got, r)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := rollupsOf(tier, ts, vs)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %s rollups:\n got %d rows %v\nwant %d rows %v", when, tier, len(got), head(got), len(want), head(want))
			}
		}
	}
	send(s, 0, 700)
	check(s, "in memory")
	mustCheckpoint(t, s)
	check(s, "checkpointed")
	send(s, 700, 1300) // adds to stored buckets
	check(s, "stored and in memory")
	if _, _, err := s.CheckpointStep(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	send(s, 1300, 1400)
	s = h.crash()
	check(s, "after a crash")
	mustCheckpoint(t, s)
	check(h.crash(), "after a checkpoint and a clean restart")
}

// head shortens a list of rollups for a failure message.
func head(rs []telemetry.Rollup) []telemetry.Rollup {
	if len(rs) > 6 {
		return rs[:6]
	}
	return rs
}

// A query while batches commit and checkpoints write sees each batch's
// readings in the rollups exactly once: in memory, being written, or
// stored, never in two of them nor in none.
func testRollupsConcurrent(t *testing.T, h *hub) {
	ctx := context.Background()
	s := h.open("dev1")
	const batches, size = 40, 100
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		last := 0
		for {
			select {
			case <-done:
				return
			default:
			}
			n, sum := 0, 0.0
			err := s.RollupReadings(ctx, "dev1", "n", telemetry.TierHour, T0.Add(-time.Hour), T0.Add(24*time.Hour), func(r telemetry.Rollup) error {
				n += r.N
				sum += r.Sum
				return nil
			})
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				errc <- err
				return
			}
			// Every reading is 1: the count and the sum agree, a whole
			// number of batches, never fewer than seen before.
			if n%size != 0 || float64(n) != sum || n < last {
				errc <- fmt.Errorf("rollups count %d readings summing to %v after %d: a batch is doubled or missing", n, sum, last)
				return
			}
			last = n
		}
	}()
	for batch := range batches {
		var recs []telemetry.Record
		for i := range size {
			recs = append(recs, record("dev1", T0.Add(time.Duration(batch*size+i)*time.Second), map[string]float64{"n": 1}))
		}
		mustAppend(t, s, recs...)
		if _, _, err := s.CheckpointStep(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mustCheckpoint(t, s)
	if n, _ := countRollups(t, s, "dev1", "n", telemetry.TierMinute); n != batches*size {
		t.Errorf("minute rollups count %d readings, want %d", n, batches*size)
	}
}

// Rollup rows go once their bucket is past the tier's retention; readings
// older than a tier keeps are not added to it at all.
func testPruneRollups(t *testing.T, h *hub) {
	ctx := context.Background()
	h.now = T0.Add(10 * time.Hour)
	h.retention = telemetry.Retention{Messages: -1, Raw: -1, Minutes: 2 * time.Hour, Hours: 6 * time.Hour}
	s := h.open("dev1")
	var recs []telemetry.Record
	for i := range 10 * 60 { // one a minute for 10 hours
		recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Minute), map[string]float64{"x": 1}))
	}
	mustAppend(t, s, recs...)
	mustCheckpoint(t, s)
	// Only the readings of the last 2 hours went into minutes, of the
	// last 6 hours into hours.
	if n, _ := countRollups(t, s, "dev1", "x", telemetry.TierMinute); n != 120 {
		t.Errorf("minute rollups count %d readings, want the 120 of the last 2 hours", n)
	}
	if n, _ := countRollups(t, s, "dev1", "x", telemetry.TierHour); n != 360 {
		t.Errorf("hour rollups count %d readings, want the 360 of the last 6 hours", n)
	}
	// An hour later, a minute's and an hour's worth are past their retention.
	h.now = h.now.Add(time.Hour)
	total := 0
	for {
		n, more, err := s.Prune(ctx, h.now, 7)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if !more {
			break
		}
	}
	if total != 60+1 {
		t.Errorf("pruned %d rows, want 61 (60 minutes and 1 hour)", total)
	}
	if n, _ := countRollups(t, s, "dev1", "x", telemetry.TierMinute); n != 60 {
		t.Errorf("after pruning, minute rollups count %d readings, want 60", n)
	}
	if n, _ := countRollups(t, s, "dev1", "x", telemetry.TierHour); n != 300 {
		t.Errorf("after pruning, hour rollups count %d readings, want 300", n)
	}
}

// Charts read raw readings while they reach back to the range's start,
// then the coarsest rollup that fits the chart's buckets; the answer names
// the tier, and a chosen tier answers from it.
func testTierForTheRange(t *testing.T, h *hub) {
	ctx := context.Background()
	h.now = T0.Add(48 * time.Hour)
	h.retention = telemetry.Retention{Raw: 24 * time.Hour, Messages: 24 * time.Hour}
	s := h.open("dev1")
	var recs []telemetry.Record
	for i := range 48 * 60 { // one a minute for 2 days
		recs = append(recs, record("dev1", T0.Add(time.Duration(i)*time.Minute), map[string]float64{"x": float64(i % 7)}))
	}
	mustAppend(t, s, recs...)
	mustCheckpoint(t, s)
	tests := []struct {
		name     string
		from     time.Time
		points   int
		want     telemetry.Tier
		readings int
	}{
		{"the last hour", h.now.Add(-time.Hour), 100, telemetry.TierRaw, 60},
		{"the last day", h.now.Add(-24 * time.Hour), 1000, telemetry.TierRaw, 24 * 60},
		{"two days in 1000 buckets", T0, 1000, telemetry.TierMinute, 48 * 60},
		{"two days in 24 buckets", T0, 24, telemetry.TierHour, 48 * 60},
		{"a year", h.now.Add(-365 * 24 * time.Hour), 1000, telemetry.TierHour, 48 * 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := h.now.Add(-time.Millisecond)
			d, err := s.Readings(ctx, "dev1", "x", tt.from, to, tt.points)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, b := range d.Buckets {
				n += b.Count
			}
			if d.Tier != tt.want || n != tt.readings || len(d.Buckets) > tt.points {
				t.Errorf("tier %s, %d readings in %d buckets; want tier %s, %d readings in at most %d", d.Tier, n, len(d.Buckets), tt.want, tt.readings, tt.points)
			}
		})
	}
	// Asked for, the minute tier answers the last hour too.
	d, err := s.ReadingsAt(ctx, "dev1", "x", h.now.Add(-time.Hour), h.now.Add(-time.Millisecond), 60, telemetry.TierMinute)
	if err != nil || d.Tier != telemetry.TierMinute || len(d.Buckets) != 60 {
		t.Errorf("the last hour from minutes: tier %s, %d buckets (%v); want 60 from 1m", d.Tier, len(d.Buckets), err)
	}
	if got, want := s.ExportTier(T0, h.now), telemetry.TierMinute; got != want {
		t.Errorf("export from T0 reads %s, want %s", got, want)
	}
	if got, want := s.ExportTier(h.now.Add(-time.Hour), h.now), telemetry.TierRaw; got != want {
		t.Errorf("export of the last hour reads %s, want %s", got, want)
	}
}

package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"fieldhub/db"
)

// jsonReadings is a small stand-in for ingest's extractor: a flat JSON object
// of numbers, with an optional "ts" in epoch ms.
func jsonReadings(body []byte, enqueued time.Time) (time.Time, []db.Reading) {
	var obj map[string]float64
	if json.Unmarshal(body, &obj) != nil {
		return enqueued, nil
	}
	ts := enqueued
	if v, ok := obj["ts"]; ok {
		ts = time.UnixMilli(int64(v)).UTC()
		delete(obj, "ts")
	}
	var rs []db.Reading
	for k, v := range obj {
		rs = append(rs, db.Reading{Metric: k, Value: v})
	}
	return ts, rs
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// telemetryDB opens a database with devices and recovered telemetry.
func telemetryDB(t *testing.T, path string, devices ...string) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.Now = func() time.Time { return t0 }
	for _, id := range devices {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil && !errors.Is(err, db.ErrConflict) {
			t.Fatal(err)
		}
	}
	if _, err := d.RecoverTelemetry(ctx, jsonReadings); err != nil {
		t.Fatal(err)
	}
	return d
}

// message builds a message whose body and readings agree.
func message(device string, at time.Time, values map[string]float64) db.NewMessage {
	body, _ := json.Marshal(values)
	ts, rs := jsonReadings(body, at)
	return db.NewMessage{DeviceID: device, EnqueuedAt: at, ReadingTime: ts, Readings: rs, Body: body, AuthMethod: "sas-primary"}
}

func mustAppend(t *testing.T, d *db.DB, msgs ...db.NewMessage) []int64 {
	t.Helper()
	ids, err := d.AppendMessages(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func countReadings(t *testing.T, d *db.DB, device, metric string) (n int, sum float64) {
	t.Helper()
	err := d.RawReadings(context.Background(), device, metric, t0.Add(-24*time.Hour), t0.Add(24*time.Hour), func(_ time.Time, v float64) error {
		n++
		sum += v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, sum
}

func TestAppendMessagesThenQuery(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2")
	var msgs []db.NewMessage
	for i := range 2500 { // more than two chunks
		msgs = append(msgs, message("dev1", t0.Add(time.Duration(i)*time.Second), map[string]float64{"temp": 20 + float64(i%10)/10, "hum": 50}))
	}
	msgs[0].Properties = map[string]string{"alert": "yes"}
	msgs[0].MessageID = "m-0"
	ids := mustAppend(t, d, msgs...)
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing: %d then %d", ids[i-1], ids[i])
		}
	}

	metrics, err := d.Metrics(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 2 || metrics[0].Name != "hum" || metrics[1].Name != "temp" {
		t.Fatalf("metrics = %+v, want hum and temp", metrics)
	}
	if got, want := metrics[1].LastTime, t0.Add(2499*time.Second); !got.Equal(want) || metrics[1].LastValue != 20.9 {
		t.Errorf("temp last = %v at %v, want 20.9 at %v", metrics[1].LastValue, got, want)
	}

	// Before and after a checkpoint the answers are the same.
	for _, phase := range []string{"in memory", "checkpointed"} {
		t.Run(phase, func(t *testing.T) {
			if phase == "checkpointed" {
				st, err := d.CheckpointTelemetry(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Watermark != ids[len(ids)-1] || st.Chunks != 6 {
					t.Errorf("checkpoint = %+v, want watermark %d and 6 chunks", st, ids[len(ids)-1])
				}
			}
			if n, _ := countReadings(t, d, "dev1", "temp"); n != 2500 {
				t.Errorf("raw readings = %d, want 2500", n)
			}
			buckets, err := d.Readings(ctx, "dev1", "temp", t0, t0.Add(2500*time.Second-time.Millisecond), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(buckets) != 10 {
				t.Fatalf("got %d buckets, want 10", len(buckets))
			}
			for i, b := range buckets {
				if b.Count != 250 || b.Min != 20 || b.Max != 20.9 || !b.Time.Equal(t0.Add(time.Duration(i)*250*time.Second)) {
					t.Errorf("bucket %d = %+v, want 250 readings from 20 to 20.9 at %v", i, b, t0.Add(time.Duration(i)*250*time.Second))
				}
			}
		})
	}

	page, err := d.Messages(ctx, "dev1", db.MessageFilter{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[2499] || page[1].ID != ids[2498] {
		t.Fatalf("newest page = %v, want ids %d and %d", page, ids[2499], ids[2498])
	}
	first, err := d.Messages(ctx, "dev1", db.MessageFilter{Limit: 5, Before: ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].MessageID != "m-0" || first[0].Properties["alert"] != "yes" || first[0].AuthMethod != "sas-primary" {
		t.Errorf("oldest message = %+v, want m-0 with property alert=yes", first)
	}
	if other, err := d.Messages(ctx, "dev2", db.MessageFilter{}); err != nil || len(other) != 0 {
		t.Errorf("dev2 messages = %v, %v; want none", other, err)
	}
	if _, err := d.Messages(ctx, "nope", db.MessageFilter{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("messages of unknown device: err = %v, want ErrNotFound", err)
	}
	if _, err := d.Readings(ctx, "dev1", "nope", t0, t0, 10); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("readings of unknown metric: err = %v, want ErrNotFound", err)
	}
	var inv *db.InvalidError
	if _, err := d.Readings(ctx, "dev1", "temp", t0, t0, 0); !errors.As(err, &inv) {
		t.Errorf("points=0: err = %v, want InvalidError", err)
	}
}

func TestRecoverRebuildsOpenChunks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.db")
	d := telemetryDB(t, path, "dev1")
	send := func(d *db.DB, from, to int) {
		var msgs []db.NewMessage
		for i := from; i < to; i++ {
			msgs = append(msgs, message("dev1", t0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
		}
		mustAppend(t, d, msgs...)
	}
	send(d, 0, 1500)
	if _, err := d.CheckpointTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	send(d, 1500, 3700) // seals two more chunks that are only in memory
	d.Close()           // a crash: no checkpoint

	d2 := telemetryDB(t, path)
	n, sum := countReadings(t, d2, "dev1", "n")
	if want := 3700 * 3699 / 2; n != 3700 || sum != float64(want) {
		t.Errorf("after restart: %d readings summing to %v, want 3700 summing to %d", n, sum, want)
	}
	metrics, err := d2.Metrics(ctx, "dev1")
	if err != nil || len(metrics) != 1 || metrics[0].LastValue != 3699 {
		t.Errorf("after restart metrics = %+v, %v; want n = 3699", metrics, err)
	}
	// A second crash after more data, with a checkpoint in between, still adds up.
	send(d2, 3700, 4000)
	if _, err := d2.CheckpointTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	send(d2, 4000, 4100)
	d2.Close()
	d3 := telemetryDB(t, path)
	if n, sum := countReadings(t, d3, "dev1", "n"); n != 4100 || sum != float64(4100*4099/2) {
		t.Errorf("after second restart: %d readings summing to %v, want 4100 summing to %d", n, sum, 4100*4099/2)
	}
}

func TestAppendMessagesForDeletedDevice(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2")
	mustAppend(t, d, message("dev1", t0, map[string]float64{"a": 1}), message("dev2", t0, map[string]float64{"a": 2}))
	if err := d.DeleteDevice(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	ids := mustAppend(t, d, message("dev1", t0.Add(time.Second), map[string]float64{"a": 3}), message("dev2", t0.Add(time.Second), map[string]float64{"a": 4}))
	if ids[0] != 0 || ids[1] == 0 {
		t.Errorf("ids = %v, want 0 for the deleted device and an id for dev2", ids)
	}
	// The stale series of dev1 is dropped at the checkpoint, not an error.
	if _, err := d.CheckpointTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	// Recreated under the same id, the device starts from nothing.
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	d.Now = func() time.Time { return t0.Add(time.Hour) } // a different created_at
	mustAppend(t, d, message("dev1", t0.Add(2*time.Second), map[string]float64{"a": 5}))
	if n, sum := countReadings(t, d, "dev1", "a"); n != 1 || sum != 5 {
		t.Errorf("recreated dev1: %d readings summing to %v, want 1 reading of 5", n, sum)
	}
	if n, sum := countReadings(t, d, "dev2", "a"); n != 2 || sum != 6 {
		t.Errorf("dev2: %d readings summing to %v, want 2 summing to 6", n, sum)
	}
}

func TestPruneTelemetry(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	var msgs []db.NewMessage
	for i := range 3000 {
		msgs = append(msgs, message("dev1", t0.Add(time.Duration(i)*time.Minute), map[string]float64{"x": 1}))
	}
	mustAppend(t, d, msgs...)
	if _, err := d.CheckpointTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(2000 * time.Minute)
	total := 0
	for {
		n, more, err := d.PruneTelemetry(ctx, cutoff, 500)
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
	left, err := d.Messages(ctx, "dev1", db.MessageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1000 || left[len(left)-1].EnqueuedAt.Before(cutoff) {
		t.Errorf("%d messages left, oldest at %v; want 1000 from %v on", len(left), left[len(left)-1].EnqueuedAt, cutoff)
	}
	if n, _ := countReadingsFrom(t, d, "dev1", "x", t0.Add(-time.Hour), t0.Add(72*time.Hour)); n != 1000 {
		t.Errorf("%d readings left, want the 1000 of the last chunk", n)
	}
}

func countReadingsFrom(t *testing.T, d *db.DB, device, metric string, from, to time.Time) (int, error) {
	n := 0
	err := d.RawReadings(context.Background(), device, metric, from, to, func(time.Time, float64) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n, nil
}

func TestConcurrentQueriesDuringIngest(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
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
			err := d.RawReadings(ctx, "dev1", "n", t0.Add(-time.Hour), t0.Add(24*time.Hour), func(_ time.Time, v float64) error {
				n++
				last = int(v)
				return nil
			})
			if err != nil && !errors.Is(err, db.ErrNotFound) {
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
		var msgs []db.NewMessage
		for i := batch * 100; i < batch*100+100; i++ {
			msgs = append(msgs, message("dev1", t0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
		}
		mustAppend(t, d, msgs...)
		if batch%7 == 0 {
			if _, err := d.CheckpointTelemetry(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestMetricsPerDeviceAreBounded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.db")
	d := telemetryDB(t, path, "dev1")
	var msgs []db.NewMessage
	for i := range db.MaxMetricsPerDevice + 5 {
		msgs = append(msgs, message("dev1", t0, map[string]float64{fmt.Sprintf("m%05d", i): 1}))
	}
	ids := mustAppend(t, d, msgs...)
	if ids[len(ids)-1] == 0 {
		t.Fatal("the message over the metric limit was not stored")
	}
	check := func(d *db.DB) {
		t.Helper()
		metrics, err := d.Metrics(ctx, "dev1")
		if err != nil || len(metrics) != db.MaxMetricsPerDevice {
			t.Errorf("%d metrics (%v), want %d", len(metrics), err, db.MaxMetricsPerDevice)
		}
	}
	check(d)
	d.Close()
	check(telemetryDB(t, path)) // recovery does not create the refused ones either
}

// Last activity is written at once for a device's first message and when it
// moved on by ActivityStep; smaller steps wait for a later batch or the
// checkpoint.
func TestAppendMessagesLastActivity(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	lastActivity := func() time.Time {
		t.Helper()
		dev, err := d.Device(ctx, "dev1")
		if err != nil {
			t.Fatal(err)
		}
		return dev.LastActivity
	}
	steps := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"first message", t0, t0},
		{"within a step", t0.Add(db.ActivityStep / 2), t0},
		{"a step later", t0.Add(db.ActivityStep), t0.Add(db.ActivityStep)},
		{"older message", t0.Add(db.ActivityStep / 2), t0.Add(db.ActivityStep)},
		{"within the next step", t0.Add(db.ActivityStep * 3 / 2), t0.Add(db.ActivityStep)},
	}
	for _, s := range steps {
		mustAppend(t, d, message("dev1", s.at, map[string]float64{"a": 1}))
		if got := lastActivity(); !got.Equal(s.want) {
			t.Errorf("%s: last activity = %v, want %v", s.name, got, s.want)
		}
	}
	if _, err := d.CheckpointTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := lastActivity(), t0.Add(db.ActivityStep*3/2); !got.Equal(want) {
		t.Errorf("after checkpoint: last activity = %v, want %v", got, want)
	}
}

// A batch larger than one INSERT, interleaving devices and a deleted one:
// every returned id must be the stored row of that very message.
func TestAppendMessagesIDs(t *testing.T) {
	ctx := context.Background()
	d := telemetryDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2", "dev3")
	mustAppend(t, d, message("dev2", t0, map[string]float64{"a": 1})) // cache dev2's row
	if err := d.DeleteDevice(ctx, "dev2"); err != nil {
		t.Fatal(err)
	}
	var msgs []db.NewMessage
	for i := range 150 {
		dev := []string{"dev1", "dev2", "dev3"}[i%3]
		msgs = append(msgs, message(dev, t0.Add(time.Duration(i)*time.Millisecond), map[string]float64{"n": float64(i)}))
	}
	ids := mustAppend(t, d, msgs...)
	for _, dev := range []string{"dev1", "dev3"} {
		stored, err := d.Messages(ctx, dev, db.MessageFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[int64]db.StoredMessage{}
		for _, m := range stored {
			byID[m.ID] = m
		}
		for i, m := range msgs {
			if m.DeviceID != dev {
				continue
			}
			got, ok := byID[ids[i]]
			if !ok || string(got.Body) != string(m.Body) || !got.EnqueuedAt.Equal(m.EnqueuedAt) {
				t.Errorf("message %d of %s: id %d holds %q at %v, want %q at %v", i, dev, ids[i], got.Body, got.EnqueuedAt, m.Body, m.EnqueuedAt)
			}
		}
		if len(stored) != 50 {
			t.Errorf("%s: %d messages stored, want 50", dev, len(stored))
		}
	}
	for i, m := range msgs {
		if m.DeviceID == "dev2" && ids[i] != 0 {
			t.Errorf("message %d of the deleted dev2: id %d, want 0", i, ids[i])
		}
	}
}

// A crash in the middle of a checkpoint cycle, with messages committed
// between its steps, loses and doubles no reading: some series are stored
// through the cycle's start, the others only through the previous cycle.
func TestCrashDuringCheckpointCycle(t *testing.T) {
	ctx := context.Background()
	devices := []string{"dev1", "dev2", "dev3", "dev4"}
	const metrics = 20
	cases := []struct {
		name  string
		steps int // steps written before the crash; the cycle may finish sooner
	}{
		{"after one step", 1},
		{"after three steps", 3},
		{"after the whole cycle", 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.db")
			d := telemetryDB(t, path, devices...)
			type total struct {
				n   int
				sum float64
			}
			want := map[string]total{}
			next := 0
			send := func(d *db.DB, count int) {
				t.Helper()
				var msgs []db.NewMessage
				for range count {
					dev := devices[next%len(devices)]
					values := map[string]float64{}
					for m := range metrics {
						values[fmt.Sprintf("m%02d", m)] = float64(next)
					}
					msgs = append(msgs, message(dev, t0.Add(time.Duration(next)*time.Second), values))
					w := want[dev]
					w.n++
					w.sum += float64(next)
					want[dev] = w
					next++
				}
				mustAppend(t, d, msgs...)
			}
			check := func(d *db.DB, when string) {
				t.Helper()
				for _, dev := range devices {
					for m := range metrics {
						name := fmt.Sprintf("m%02d", m)
						if n, sum := countReadings(t, d, dev, name); n != want[dev].n || sum != want[dev].sum {
							t.Fatalf("%s: %s/%s has %d readings summing to %v, want %d summing to %v", when, dev, name, n, sum, want[dev].n, want[dev].sum)
						}
					}
				}
			}
			crashMidCycle := func(d *db.DB) {
				t.Helper()
				for range tc.steps {
					done, _, err := d.CheckpointStep(ctx, 30)
					if err != nil {
						t.Fatal(err)
					}
					send(d, 8) // committed while the cycle is in progress
					check(d, "during the cycle")
					if done {
						break
					}
				}
				d.Close() // a crash: the cycle is not finished
			}

			send(d, 2000)
			if _, err := d.CheckpointTelemetry(ctx); err != nil {
				t.Fatal(err)
			}
			send(d, 4000) // seals chunks only in memory
			crashMidCycle(d)
			d2 := telemetryDB(t, path)
			check(d2, "after the first crash")

			// Again from the recovered state, whose series are stored through
			// different messages.
			send(d2, 3000)
			crashMidCycle(d2)
			d3 := telemetryDB(t, path)
			check(d3, "after the second crash")
			if _, err := d3.CheckpointTelemetry(ctx); err != nil {
				t.Fatal(err)
			}
			d3.Close()
			check(telemetryDB(t, path), "after a clean checkpoint")
		})
	}
}

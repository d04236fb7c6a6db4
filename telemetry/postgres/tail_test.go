package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"fieldhub/telemetry"
)

// testOtherNodesTail: two instances on one database; readings stored
// through a are returned by b's queries at once, before a checkpoints
// them, and every reading comes once whatever has been checkpointed (a's
// readings, b's own, a checkpoint between); another metric of the same
// messages and an idle third node change nothing.
func testOtherNodesTail(t *testing.T, url string) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, openNode := nodesOn(t, url, t0, "dev", "other")
	open := func(node string) *telemetry.Store { _, s := openNode(node); return s }
	appendAt := func(s *telemetry.Store, dev string, seconds ...int) {
		t.Helper()
		var recs []telemetry.Record
		for _, sec := range seconds {
			at := t0.Add(time.Duration(sec) * time.Second)
			recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: dev, AuthMethod: "sas-primary",
				Body: fmt.Appendf(nil, `{"temp":%d,"hum":%d}`, sec, 100+sec), EnqueuedAt: at}))
		}
		if _, err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := func(s *telemetry.Store) {
		t.Helper()
		if _, err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, b := open("a"), open("b")
	open("idle") // a node that never logs: skipped
	// want checks what each instance reads of dev's temp, raw and charted.
	want := func(step, readings string) {
		t.Helper()
		for name, s := range map[string]*telemetry.Store{"a": a, "b": b} {
			got := rawValues(t, s, "dev", "temp", t0, t0.Add(time.Minute))
			slices.Sort(got) // chunks of two nodes overlap in time
			if fmt.Sprint(got) != readings {
				t.Errorf("%s: %s reads raw %v, want %s", step, name, got, readings)
			}
			// One bucket a second: the count of each is 1.
			ds, err := s.ReadingsAt(ctx, "dev", "temp", t0, t0.Add(time.Minute-time.Millisecond), 60, telemetry.TierRaw)
			if err != nil {
				t.Fatal(err)
			}
			var chart []float64
			for _, bk := range ds.Buckets {
				if bk.Count != 1 {
					t.Errorf("%s: %s charts %d readings at %s, want 1", step, name, bk.Count, bk.Time)
				}
				chart = append(chart, bk.Avg)
			}
			if fmt.Sprint(chart) != readings {
				t.Errorf("%s: %s charts %v, want %s", step, name, chart, readings)
			}
		}
	}
	appendAt(a, "dev", 1, 2, 3)
	appendAt(a, "other", 1, 2)
	want("a's readings not checkpointed", "[1 2 3]")
	// Another device's other metric, from the same kind of messages.
	if hum := rawValues(t, b, "other", "hum", t0, t0.Add(time.Minute)); fmt.Sprint(hum) != "[101 102]" {
		t.Errorf("b reads other's hum %v, want [101 102]", hum)
	}
	lastTemp := func(s *telemetry.Store) float64 {
		t.Helper()
		ms, err := s.Metrics(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Name == "temp" {
				return m.LastValue
			}
		}
		t.Fatalf("dev has no metric temp: %v", ms)
		return 0
	}
	if v := lastTemp(b); v != 3 {
		t.Errorf("b's last value of dev's temp = %v, want a's newest reading 3", v)
	}
	appendAt(b, "dev", 4)
	want("both not checkpointed", "[1 2 3 4]")
	if v := lastTemp(a); v != 4 {
		t.Errorf("a's last value of dev's temp = %v, want b's newer reading 4", v)
	}
	checkpoint(a)
	want("a checkpointed", "[1 2 3 4]")
	appendAt(a, "dev", 5, 6)
	want("a logged more since its checkpoint", "[1 2 3 4 5 6]")
	checkpoint(b)
	checkpoint(a)
	want("both checkpointed", "[1 2 3 4 5 6]")
}

package alerting

import (
	"log/slog"
	"testing"
	"time"

	"fieldhub/telemetry"
)

// TestCommittedReusesEvaluatedInputs: a commit's events and samples are
// copied into a batch that comes back once evaluated, emptied (no device,
// metric name or properties held), and is filled again by a later commit;
// its samples array is as large as the commit needs, not a fixed 1,024.
func TestCommittedReusesEvaluatedInputs(t *testing.T) {
	s := &Service{log: slog.Default(), in: make(chan *inputs, 2), spare: make(chan *inputs, spareInputs)}
	record := func(device string, values ...float64) telemetry.Record {
		r := telemetry.Record{Message: telemetry.Message{DeviceID: device, EnqueuedAt: time.UnixMilli(1e12)}}
		for i, v := range values {
			r.Readings = append(r.Readings, telemetry.Reading{Metric: string(rune('a' + i)), Value: v})
		}
		return r
	}
	s.Committed([]telemetry.Record{record("d1", 1, 2), record("d2"), record("d3", 3)})
	first := <-s.in
	if len(first.in) != 3 || len(first.in[0].samples) != 2 || first.in[2].samples[0].Value != 3 || first.in[1].samples != nil {
		t.Fatalf("first batch = %+v", first.in)
	}
	if len(first.arrays) != 1 || cap(first.arrays[0]) != 3 {
		t.Errorf("samples arrays %v, want one of 3 (the commit's)", first.arrays)
	}
	s.recycle(first)
	for i, in := range first.in[:cap(first.in)] {
		if in.deviceID != "" || in.samples != nil {
			t.Errorf("recycled input %d holds %+v", i, in)
		}
	}
	for i, sm := range first.arrays[0][:cap(first.arrays[0])] {
		if sm.Metric != "" {
			t.Errorf("recycled sample %d holds %+v", i, sm)
		}
	}
	array := &first.arrays[0][:1][0]
	s.Committed([]telemetry.Record{record("d4", 4), record("d5", 5)})
	second := <-s.in
	if second != first {
		t.Error("the second commit did not reuse the evaluated batch")
	}
	if len(second.in) != 2 || second.in[0].deviceID != "d4" || second.in[1].samples[0].Value != 5 {
		t.Errorf("second batch = %+v", second.in)
	}
	if &second.in[0].samples[0] != array {
		t.Error("the second commit's samples are not in the kept array")
	}
	// A larger commit than the kept array holds gets a new one, with room
	// to spare, kept instead.
	s.recycle(second)
	s.Committed([]telemetry.Record{record("d6", 1, 2, 3, 4)})
	third := <-s.in
	if len(third.arrays) != 1 || cap(third.arrays[0]) != 6 || third.in[0].samples[3].Value != 4 {
		t.Errorf("third batch: arrays %v, samples %v; want one array of 6 (twice the kept one's 3)", third.arrays, third.in[0].samples)
	}
	// A batch larger than what is kept is left to the collector.
	large := &inputs{in: make([]input, keptInputs+1)}
	s.recycle(large)
	if b := s.spareInputs(); b == large {
		t.Error("a large batch was kept")
	}
}

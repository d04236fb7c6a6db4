package alert

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// restart carries a harness's state through JSON into a new evaluator with
// the given rules, as a hub restarting at s would.
func restart(t *testing.T, h *harness, s float64, rules ...Rule) *harness {
	t.Helper()
	b, err := json.Marshal(h.ev.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, rules...)
	h2.tags = h.tags
	ts, err := h2.ev.Restore(snap, at(s))
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	h2.got = show(ts)
	return h2
}

func TestRestart(t *testing.T) {
	t.Run("mid forSeconds raises at the right time", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 120)
		h := newHarness(t, r)
		h.read("d", 0, "temp", 31)
		h.read("d", 50, "temp", 33)
		h = restart(t, h, 60, r)
		h.expect()
		h.deadline(120)
		h.tick(119)
		h.expect()
		h.tick(120)
		h.expect("raise r1/d @120 major n=1 first=120 last=120 alert=33 v=33")
	})
	t.Run("forSeconds that ran out while down", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 120)
		h := newHarness(t, r)
		h.read("d", 0, "temp", 31)
		h = restart(t, h, 500, r)
		h.expect("raise r1/d @120 major n=1 first=120 last=120 alert=31 v=31")
	})
	t.Run("silence timer survives", func(t *testing.T) {
		r := silenceRule(1, 300)
		h := newHarness(t, r)
		h.read("d", 0)
		h.read("d", 100)
		h = restart(t, h, 200, r)
		h.expect()
		h.deadline(400)
		h.tick(400)
		h.expect("raise r1/d @400 critical n=1 first=400 last=400 alert=300 v=300")
		h.read("d", 450)
		h.expect("clear r1/d @450 critical n=1 first=400 last=400 alert=300 v=350 condition")
	})
	t.Run("open alerts continue", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 0)
		r.Condition.Hysteresis = 2
		s := silenceRule(2, 60)
		h := newHarness(t, r, s)
		h.read("d", 0, "temp", 31)
		h.read("d", 1, "temp", 29)
		h.read("d", 2, "temp", 32)
		h.tick(62)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31",
			"repeat r1/d @2 major n=2 first=0 last=2 alert=32 v=32",
			"raise r2/d @62 critical n=1 first=62 last=62 alert=60 v=60")
		h = restart(t, h, 100, r, s)
		h.expect()
		h.deadline(-1) // the silent device's alert waits for a message
		h.read("d", 110, "temp", 33)
		h.read("d", 111, "temp", 28)
		h.expect("clear r2/d @110 critical n=1 first=62 last=62 alert=60 v=108 condition",
			"clear r1/d @111 major n=2 first=0 last=110 alert=33 v=28 condition")
	})
	t.Run("changed baselines and suppression survive", func(t *testing.T) {
		c, p, th := changedRule(1, "fw", ""), changedRule(2, "", "firmware"), thresholdRule(3, "temp", Greater, 30, 0)
		h := newHarness(t, c, p, th)
		h.read("d", 0, "fw", 1, "temp", 31)
		h.reported("d", 0, map[string]any{"firmware": "1.0"})
		h.ev.ClearedByOperator(3, "d")
		h.expect("raise r3/d @0 major n=1 first=0 last=0 alert=31 v=31")
		h = restart(t, h, 10, c, p, th)
		h.read("d", 11, "fw", 1, "temp", 35)
		h.reported("d", 11, map[string]any{"firmware": "1.0"})
		h.expect()
		h.read("d", 12, "fw", 2)
		h.reported("d", 12, map[string]any{"firmware": "2.0"})
		h.expect("raise r1/d @12 info n=1 first=12 last=12 alert=2 v=2 prev=1",
			"raise r2/d @12 info n=1 first=12 last=12 alert=2.0 v=2.0 prev=1.0")
	})
	t.Run("state that no longer applies", func(t *testing.T) {
		keep, gone, off := thresholdRule(1, "temp", Greater, 30, 0), thresholdRule(2, "temp", Greater, 30, 0), thresholdRule(3, "temp", Greater, 30, 0)
		berlin := thresholdRule(4, "temp", Greater, 30, 60)
		berlin.Scope = Scope{Tags: map[string]string{"site": "berlin"}}
		h := newHarness(t, keep, gone, off, berlin)
		h.tags["d"] = map[string]string{"site": "berlin"}
		h.read("d", 0, "temp", 31)
		h.read("e", 0, "temp", 31)
		h.got = nil
		snap := h.ev.Snapshot()
		snap.Devices = snap.Devices[:1] // e was deleted while the hub was down
		snap.Devices[0].Tags = map[string]string{"site": "rome"}
		off.Enabled = false
		h2 := newHarness(t, keep, off, berlin)
		ts, err := h2.ev.Restore(snap, at(10))
		if err != nil {
			t.Fatal(err)
		}
		h2.got = show(ts)
		h2.expect("clear r2/d @10 major n=1 first=0 last=0 alert=31 v=<nil> ruleDeleted",
			"clear r3/d @10 major n=1 first=0 last=0 alert=31 v=<nil> ruleDisabled",
			"clear r1/e @10 major n=1 first=0 last=0 alert=31 v=<nil> deviceDeleted",
			"clear r2/e @10 major n=1 first=0 last=0 alert=31 v=<nil> ruleDeleted",
			"clear r3/e @10 major n=1 first=0 last=0 alert=31 v=<nil> ruleDisabled")
		h2.deadline(-1) // rule 4's pending timer: d left berlin
		if _, err := h2.ev.Restore(snap, at(10)); !errors.Is(err, ErrNotFresh) {
			t.Fatalf("second Restore: %v, want ErrNotFresh", err)
		}
	})
	t.Run("from the caller's tables", func(t *testing.T) {
		// Open alerts from the alerts table and last activity from the
		// registry: no saved snapshot at all.
		th, s := thresholdRule(1, "temp", Greater, 30, 0), silenceRule(2, 300)
		h := newHarness(t, th, s)
		ts, err := h.ev.Restore(Snapshot{
			Devices: []DeviceState{{ID: "d", Tags: map[string]string{}, LastSeen: at(0)}, {ID: "e", LastSeen: at(100)}},
			Open:    []OpenAlert{{RuleID: 1, DeviceID: "d", Severity: Major, FirstAt: at(-50), LastAt: at(-10), Count: 3, Value: json.Number("31")}},
		}, at(200))
		if err != nil {
			t.Fatal(err)
		}
		h.got = show(ts)
		h.expect()
		h.deadline(300)
		h.tick(400)
		h.read("d", 401, "temp", 20)
		h.expect("raise r2/d @300 critical n=1 first=300 last=300 alert=300 v=300",
			"raise r2/e @400 critical n=1 first=400 last=400 alert=300 v=300",
			"clear r2/d @401 critical n=1 first=300 last=300 alert=300 v=401 condition",
			"clear r1/d @401 major n=3 first=-50 last=-10 alert=31 v=20 condition")
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	th := thresholdRule(1, "temp", Greater, 30, 60)
	th.Condition.Hysteresis = 1
	rules := []Rule{th, silenceRule(2, 30), changedRule(3, "fw", ""), changedRule(4, "", "a.b"), thresholdRule(5, "temp", Greater, 30, 0)}
	h := newHarness(t, rules...)
	h.tags["d"] = map[string]string{"site": "x"}
	h.read("d", 0, "temp", 31, "fw", 1)
	h.reported("d", 1, map[string]any{"a": map[string]any{"b": []any{"x"}}})
	h.read("e", 2, "temp", 29)
	h.ev.ClearedByOperator(5, "d")
	h.tick(70)
	before := h.ev.Snapshot()
	b, err := json.Marshal(before)
	if err != nil {
		t.Fatal(err)
	}
	var decoded Snapshot
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, rules...)
	if _, err := h2.ev.Restore(decoded, at(70)); err != nil {
		t.Fatal(err)
	}
	after := h2.ev.Snapshot()
	if !reflect.DeepEqual(normalizeSnapshot(t, before), normalizeSnapshot(t, after)) {
		t.Fatalf("snapshot changed across restore:\n before %+v\n after  %+v", before, after)
	}
	if len(before.Open) != 3 || len(before.Suppressed) != 1 || len(before.Baselines) != 2 || len(before.Devices) != 2 {
		t.Fatalf("snapshot does not hold the state the test made: %+v", before)
	}
}

// normalizeSnapshot compares snapshots as their JSON (times in UTC, numbers
// as JSON has them).
func normalizeSnapshot(t *testing.T, s Snapshot) any {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

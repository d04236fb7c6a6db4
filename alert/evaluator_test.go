package alert

import (
	"encoding/json"
	"math"
	"testing"
)

func TestThresholdOps(t *testing.T) {
	tests := []struct {
		op            Op
		below, at, up bool // raises for 29, 30 and 31
	}{
		{Greater, false, false, true},
		{GreaterEqual, false, true, true},
		{Less, true, false, false},
		{LessEqual, true, true, false},
		{Equal, false, true, false},
		{NotEqual, true, false, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			for i, c := range []struct {
				v      float64
				raises bool
			}{{29, tt.below}, {30, tt.at}, {31, tt.up}} {
				h := newHarness(t, thresholdRule(1, "temp", tt.op, 30, 0))
				dev := string(rune('a' + i))
				h.read(dev, 10, "temp", c.v)
				if !c.raises {
					h.expect()
					continue
				}
				h.expect("raise r1/" + dev + " @10 major n=1 first=10 last=10 alert=" + formatNumber(c.v) + " v=" + formatNumber(c.v))
				// Find a value for which the comparison does not hold: it clears.
				for _, back := range []float64{29, 30, 31} {
					if !tt.op.Holds(back, 30) {
						h.read(dev, 20, "temp", back)
						h.expect("clear r1/" + dev + " @20 major n=1 first=10 last=10 alert=" + formatNumber(c.v) + " v=" + formatNumber(back) + " condition")
						break
					}
				}
			}
		})
	}
}

func TestThresholdIgnoresOtherMetricsAndKeepsLastValue(t *testing.T) {
	h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 0))
	h.read("d", 0, "humidity", 99, "temp.inner", 99)
	h.read("d", 1) // a message without the metric changes nothing
	h.expect()
	h.read("d", 2, "temp", 31)
	h.read("d", 3, "humidity", 10)
	h.read("d", 4, "temp", 32) // still above: no new alert, no repeat
	h.expect("raise r1/d @2 major n=1 first=2 last=2 alert=31 v=31")
	snap := h.ev.Snapshot()
	if len(snap.Open) != 1 || snap.Open[0].LastAt != at(4) || snap.Open[0].Value != 32.0 {
		t.Fatalf("open alert = %+v, want last at 4 with value 32", snap.Open)
	}
}

func TestForSeconds(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 120))
		h.read("d", 0, "temp", 31)
		h.deadline(120)
		h.read("d", 60, "temp", 32)
		h.tick(119.999)
		h.expect()
		h.tick(125) // late: the alert is still dated when the time was up
		h.expect("raise r1/d @120 major n=1 first=120 last=120 alert=32 v=32")
		h.deadline(-1)
	})
	t.Run("broken before time", func(t *testing.T) {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 120))
		h.read("d", 0, "temp", 31)
		h.read("d", 119, "temp", 30)
		h.deadline(-1)
		h.tick(125)
		h.expect()
		h.read("d", 130, "temp", 35) // holding starts again from here
		h.deadline(250)
		h.tick(249)
		h.tick(250)
		h.expect("raise r1/d @250 major n=1 first=250 last=250 alert=35 v=35")
	})
	t.Run("reading exactly at time", func(t *testing.T) {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 120))
		h.read("d", 0, "temp", 31)
		h.read("d", 120, "temp", 33) // the timer fires before the reading applies
		h.expect("raise r1/d @120 major n=1 first=120 last=120 alert=31 v=31")
	})
	t.Run("breaking reading exactly at time", func(t *testing.T) {
		// It held for the full 120 s, so it raises, and the reading clears it.
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 120))
		h.read("d", 0, "temp", 31)
		h.read("d", 120, "temp", 20)
		h.expect("raise r1/d @120 major n=1 first=120 last=120 alert=31 v=31",
			"clear r1/d @120 major n=1 first=120 last=120 alert=31 v=20 condition")
	})
	t.Run("devices time apart", func(t *testing.T) {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 60))
		h.read("b", 10, "temp", 31)
		h.read("a", 10, "temp", 31)
		h.read("c", 30, "temp", 31)
		h.deadline(70)
		h.tick(100)
		h.expect("raise r1/a @70 major n=1 first=70 last=70 alert=31 v=31",
			"raise r1/b @70 major n=1 first=70 last=70 alert=31 v=31",
			"raise r1/c @90 major n=1 first=90 last=90 alert=31 v=31")
	})
}

func TestHysteresis(t *testing.T) {
	t.Run("above", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 0)
		r.Condition.Hysteresis = 2
		h := newHarness(t, r)
		h.read("d", 0, "temp", 31)
		h.read("d", 1, "temp", 29)   // in the band: stays open
		h.read("d", 2, "temp", 31.5) // a new crossing while open: repeat
		h.read("d", 3, "temp", 28.5)
		h.read("d", 4, "temp", 28) // 28 or below clears
		h.read("d", 5, "temp", 29) // below 30: nothing
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31",
			"repeat r1/d @2 major n=2 first=0 last=2 alert=31.5 v=31.5",
			"clear r1/d @4 major n=2 first=0 last=2 alert=31.5 v=28 condition")
	})
	t.Run("at or above", func(t *testing.T) {
		r := thresholdRule(1, "temp", GreaterEqual, 30, 0)
		r.Condition.Hysteresis = 2
		h := newHarness(t, r)
		h.read("d", 0, "temp", 30)
		h.read("d", 1, "temp", 28) // >= 28 holds: stays open
		h.read("d", 2, "temp", 27.9)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=30 v=30",
			"clear r1/d @2 major n=1 first=0 last=0 alert=30 v=27.9 condition")
	})
	t.Run("below", func(t *testing.T) {
		r := thresholdRule(1, "battery", Less, 10, 0)
		r.Condition.Hysteresis = 2
		h := newHarness(t, r)
		h.read("d", 0, "battery", 9)
		h.read("d", 1, "battery", 11.9)
		h.read("d", 2, "battery", 12)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=9 v=9",
			"clear r1/d @2 major n=1 first=0 last=0 alert=9 v=12 condition")
	})
	t.Run("at or below", func(t *testing.T) {
		r := thresholdRule(1, "battery", LessEqual, 10, 0)
		r.Condition.Hysteresis = 2
		h := newHarness(t, r)
		h.read("d", 0, "battery", 10)
		h.read("d", 1, "battery", 12)
		h.read("d", 2, "battery", 12.1)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=10 v=10",
			"clear r1/d @2 major n=1 first=0 last=0 alert=10 v=12.1 condition")
	})
	t.Run("repeat holds for forSeconds too", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 60)
		r.Condition.Hysteresis = 2
		h := newHarness(t, r)
		h.read("d", 0, "temp", 31)
		h.tick(60)
		h.read("d", 70, "temp", 29)
		h.read("d", 80, "temp", 31)
		h.read("d", 90, "temp", 29.5) // dipped again before 60 s: no repeat
		h.read("d", 100, "temp", 32)
		h.tick(159)
		h.tick(160)
		h.expect("raise r1/d @60 major n=1 first=60 last=60 alert=31 v=31",
			"repeat r1/d @160 major n=2 first=60 last=160 alert=32 v=32")
	})
}

func TestClearCondition(t *testing.T) {
	r := thresholdRule(1, "temp", Greater, 30, 0)
	r.Condition.Clear = &Comparison{Op: Less, Value: 25}
	h := newHarness(t, r)
	h.read("d", 0, "temp", 31)
	h.read("d", 1, "temp", 26)
	h.read("d", 2, "temp", 25)
	h.read("d", 3, "temp", 24.9)
	h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31",
		"clear r1/d @3 major n=1 first=0 last=0 alert=31 v=24.9 condition")

	t.Run("equality", func(t *testing.T) {
		r := thresholdRule(2, "state", Equal, 3, 0) // state 3 = fault, cleared only by 0 = ok
		r.Condition.Clear = &Comparison{Op: Equal, Value: 0}
		h := newHarness(t, r)
		h.read("d", 0, "state", 3)
		h.read("d", 1, "state", 1)
		h.read("d", 2, "state", 3) // back to fault while open: a repeat
		h.read("d", 3, "state", 0)
		h.expect("raise r2/d @0 major n=1 first=0 last=0 alert=3 v=3",
			"repeat r2/d @2 major n=2 first=0 last=2 alert=3 v=3",
			"clear r2/d @3 major n=2 first=0 last=2 alert=3 v=0 condition")
	})
}

func TestUpdateEvery(t *testing.T) {
	ev := New(Options{UpdateEvery: 60e9})
	if _, err := ev.SetRule(thresholdRule(1, "temp", Greater, 30, 0), at(0)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range []float64{0, 30, 59, 60, 90, 125} {
		got = append(got, show(ev.Reading("d", nil, at(s), []Sample{{"temp", 31 + s}}))...)
	}
	want := []string{
		"raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31",
		"update r1/d @60 major n=1 first=0 last=60 alert=91 v=91",
		"update r1/d @125 major n=1 first=0 last=125 alert=156 v=156",
	}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transition %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestSilence(t *testing.T) {
	t.Run("silent device raises, a message clears", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 300))
		h.read("d", 0)
		h.deadline(300)
		h.tick(299.9)
		h.expect()
		h.tick(300)
		h.expect("raise r1/d @300 critical n=1 first=300 last=300 alert=300 v=300")
		h.deadline(-1)
		h.read("d", 450, "temp", 1)
		h.expect("clear r1/d @450 critical n=1 first=300 last=300 alert=300 v=450 condition")
		h.deadline(750)
	})
	t.Run("messages move the timer", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 300))
		h.read("d", 0)
		h.read("d", 100)
		h.deadline(300) // moved lazily
		h.tick(300)
		h.expect()
		h.deadline(400)
		h.tick(400)
		h.expect("raise r1/d @400 critical n=1 first=400 last=400 alert=300 v=300")
	})
	t.Run("heard elsewhere moves the timer and clears; older news does nothing", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 300))
		h.read("d", 0)
		h.got = append(h.got, show(h.ev.Heard("d", at(100)))...)
		h.tick(300)
		h.expect()
		h.tick(400)
		h.expect("raise r1/d @400 critical n=1 first=400 last=400 alert=300 v=300")
		h.got = append(h.got, show(h.ev.Heard("d", at(100)))...) // what the store said before
		h.expect()
		h.got = append(h.got, show(h.ev.Heard("d", at(450)))...)
		h.expect("clear r1/d @450 critical n=1 first=400 last=400 alert=300 v=350 condition")
	})
	t.Run("reported update is activity", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 300))
		h.read("d", 0)
		h.reported("d", 200, map[string]any{"fw": "1"})
		h.tick(300)
		h.expect()
		h.deadline(500)
	})
	t.Run("device never heard from is not watched", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 300))
		h.device("d", 0, map[string]string{"site": "x"})
		h.deadline(-1)
		h.tick(10000)
		h.expect()
	})
	t.Run("new rule times from the last message", func(t *testing.T) {
		h := newHarness(t)
		h.read("quiet", 0)
		h.read("chatty", 1000)
		h.setRule(1000, silenceRule(1, 600)) // quiet has been silent 1000 s already
		h.expect("raise r1/quiet @600 critical n=1 first=600 last=600 alert=600 v=600")
		h.deadline(1600)
	})
	t.Run("rule on a device", func(t *testing.T) {
		r := silenceRule(1, 60)
		r.Scope = Scope{DeviceID: "pump"}
		h := newHarness(t, r)
		h.read("pump", 0)
		h.read("other", 0)
		h.tick(60)
		h.expect("raise r1/pump @60 critical n=1 first=60 last=60 alert=60 v=60")
	})
}

func TestChanged(t *testing.T) {
	t.Run("metric", func(t *testing.T) {
		h := newHarness(t, changedRule(1, "fw", ""), changedRule(2, "fw", ""))
		h.read("d", 0, "fw", 1) // the first value is the baseline
		h.read("d", 1, "fw", 1)
		h.read("d", 2, "other", 5)
		h.expect()
		h.read("d", 3, "fw", 2)
		h.read("d", 4, "fw", 2)
		h.read("d", 5, "fw", 3)
		h.expect("raise r1/d @3 info n=1 first=3 last=3 alert=2 v=2 prev=1",
			"raise r2/d @3 info n=1 first=3 last=3 alert=2 v=2 prev=1",
			"repeat r1/d @5 info n=2 first=3 last=5 alert=3 v=3 prev=2",
			"repeat r2/d @5 info n=2 first=3 last=5 alert=3 v=3 prev=2")
		h.read("e", 6, "fw", 9) // every device has its own baseline
		h.expect()
	})
	t.Run("reported property", func(t *testing.T) {
		h := newHarness(t, changedRule(1, "", "firmware"), changedRule(2, "", "properties.reported.modem.version"))
		h.reported("d", 0, map[string]any{"firmware": "1.0", "modem": map[string]any{"version": json.Number("7")}})
		h.reported("d", 1, map[string]any{"firmware": "1.0", "modem": map[string]any{"version": 7.0}}) // same value, other form
		h.reported("d", 2, map[string]any{"other": true})                                              // absent: not a change
		h.expect()
		h.reported("d", 3, map[string]any{"firmware": "1.1", "modem": map[string]any{"version": json.Number("7.5")}})
		h.expect("raise r1/d @3 info n=1 first=3 last=3 alert=1.1 v=1.1 prev=1.0",
			"raise r2/d @3 info n=1 first=3 last=3 alert=7.5 v=7.5 prev=7")
		h.reported("d", 4, map[string]any{"firmware": map[string]any{"a": []any{1.0, "x"}}})
		h.expect("repeat r1/d @4 info n=2 first=3 last=4 alert=map[a:[1 x]] v=map[a:[1 x]] prev=1.1")
	})
	t.Run("never clears by itself", func(t *testing.T) {
		h := newHarness(t, changedRule(1, "fw", ""))
		h.read("d", 0, "fw", 1)
		h.read("d", 1, "fw", 2)
		h.read("d", 2, "fw", 1)
		h.tick(1e6)
		h.expect("raise r1/d @1 info n=1 first=1 last=1 alert=2 v=2 prev=1",
			"repeat r1/d @2 info n=2 first=1 last=2 alert=1 v=1 prev=2")
		if !h.ev.ClearedByOperator(1, "d") {
			t.Fatal("ClearedByOperator found no open alert")
		}
		h.read("d", 3, "fw", 5)
		h.expect("raise r1/d @3 info n=1 first=3 last=3 alert=5 v=5 prev=1")
	})
}

func TestScopeByTags(t *testing.T) {
	r := thresholdRule(1, "temp", Greater, 30, 0)
	r.Scope = Scope{Tags: map[string]string{"site": "berlin", "kind": "climate"}}
	h := newHarness(t, r)
	h.device("d", 0, map[string]string{"site": "berlin"})
	h.read("d", 1, "temp", 40)
	h.expect() // needs both tags

	h.device("d", 2, map[string]string{"site": "berlin", "kind": "climate", "floor": "3"})
	h.read("d", 3, "temp", 40)
	h.expect("raise r1/d @3 major n=1 first=3 last=3 alert=40 v=40")

	h.device("d", 4, map[string]string{"site": "paris", "kind": "climate"})
	h.expect("clear r1/d @4 major n=1 first=3 last=3 alert=40 v=<nil> outOfScope")
	h.read("d", 5, "temp", 40)
	h.expect()

	// Tags passed with a reading count as a change too.
	h.tags["d"] = map[string]string{"site": "berlin", "kind": "climate"}
	h.read("d", 6, "temp", 41)
	h.expect("raise r1/d @6 major n=1 first=6 last=6 alert=41 v=41")
	h.tags["d"] = map[string]string{"site": "berlin"}
	h.read("d", 7, "temp", 42)
	h.expect("clear r1/d @7 major n=1 first=6 last=6 alert=41 v=<nil> outOfScope")

	t.Run("pending timer dropped when leaving scope", func(t *testing.T) {
		r := thresholdRule(1, "temp", Greater, 30, 60)
		r.Scope = Scope{Tags: map[string]string{"site": "berlin"}}
		h := newHarness(t, r)
		h.device("d", 0, map[string]string{"site": "berlin"})
		h.read("d", 1, "temp", 40)
		h.deadline(61)
		h.device("d", 2, map[string]string{"site": "rome"})
		h.deadline(-1)
		h.tick(100)
		h.expect()
	})
	t.Run("silence starts when a device enters scope", func(t *testing.T) {
		r := silenceRule(1, 60)
		r.Scope = Scope{Tags: map[string]string{"site": "berlin"}}
		h := newHarness(t, r)
		h.read("d", 0)
		h.deadline(-1)
		h.device("d", 10, map[string]string{"site": "berlin"})
		h.deadline(60)
		h.tick(60)
		h.expect("raise r1/d @60 critical n=1 first=60 last=60 alert=60 v=60")
		h.device("d", 70, map[string]string{})
		h.expect("clear r1/d @70 critical n=1 first=60 last=60 alert=60 v=<nil> outOfScope")
	})
}

func TestPlansAreSharedAndIndexed(t *testing.T) {
	ev := New(Options{})
	for i := int64(1); i <= 50; i++ {
		r := thresholdRule(i, "temp", Greater, 30, 0)
		r.Scope = Scope{Tags: map[string]string{"site": string(rune('a' + i%5))}}
		if _, err := ev.SetRule(r, t0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000; i++ {
		ev.Reading(string(rune(0x4e00+i)), map[string]string{"site": string(rune('a' + i%5)), "n": string(rune(i))}, t0, nil)
	}
	if n := len(ev.plans); n != 6 { // five sites and the empty plan
		t.Errorf("%d plans for 1,000 devices on 5 sites, want 6", n)
	}
	for _, d := range ev.devices {
		if len(d.plan.rules) != 10 {
			t.Fatalf("device with tags %v is watched by %d rules, want 10", d.tags, len(d.plan.rules))
		}
	}
}

func TestRuleChanges(t *testing.T) {
	open := func(t *testing.T) *harness {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 0), thresholdRule(2, "temp", Greater, 30, 60))
		h.read("d", 0, "temp", 31)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31")
		h.deadline(60)
		return h
	}
	t.Run("rename keeps the open alert", func(t *testing.T) {
		h := open(t)
		r := thresholdRule(1, "temp", Greater, 30, 0)
		r.Name, r.Severity = "Too warm", Critical
		h.setRule(1, r)
		h.read("d", 2, "temp", 20)
		h.expect("clear r1/d @2 major n=1 first=0 last=0 alert=31 v=20 condition")
		h.read("d", 3, "temp", 35)
		h.expect("raise r1/d @3 critical n=1 first=3 last=3 alert=35 v=35")
	})
	t.Run("condition edit clears and restarts", func(t *testing.T) {
		h := open(t)
		h.setRule(1, thresholdRule(1, "temp", Greater, 32, 0))
		h.setRule(1, thresholdRule(2, "temp", Greater, 30, 30))
		h.expect("clear r1/d @1 major n=1 first=0 last=0 alert=31 v=<nil> ruleChanged")
		h.deadline(-1) // rule 2's pending timer went with the edit
		h.read("d", 2, "temp", 31)
		h.expect()
		h.deadline(32)
	})
	t.Run("disable clears, enable starts fresh", func(t *testing.T) {
		h := open(t)
		r := thresholdRule(1, "temp", Greater, 30, 0)
		r.Enabled = false
		h.setRule(1, r)
		h.expect("clear r1/d @1 major n=1 first=0 last=0 alert=31 v=<nil> ruleDisabled")
		h.read("d", 2, "temp", 31)
		h.expect()
		r.Enabled = true
		h.setRule(3, r)
		h.expect()
		h.read("d", 4, "temp", 31)
		h.expect("raise r1/d @4 major n=1 first=4 last=4 alert=31 v=31")
	})
	t.Run("remove clears and drops timers", func(t *testing.T) {
		h := open(t)
		h.got = append(h.got, show(h.ev.RemoveRule(1, at(1)))...)
		h.got = append(h.got, show(h.ev.RemoveRule(2, at(1)))...)
		h.got = append(h.got, show(h.ev.RemoveRule(99, at(1)))...)
		h.expect("clear r1/d @1 major n=1 first=0 last=0 alert=31 v=<nil> ruleDeleted")
		h.deadline(-1)
		h.read("d", 2, "temp", 31)
		h.expect()
	})
	t.Run("scope narrowed", func(t *testing.T) {
		h := open(t)
		r := thresholdRule(1, "temp", Greater, 30, 0)
		r.Scope = Scope{DeviceID: "other"}
		h.setRule(1, r)
		h.expect("clear r1/d @1 major n=1 first=0 last=0 alert=31 v=<nil> outOfScope")
	})
	t.Run("device deleted", func(t *testing.T) {
		h := open(t)
		h.got = append(h.got, show(h.ev.DeviceDeleted("d", at(1)))...)
		h.expect("clear r1/d @1 major n=1 first=0 last=0 alert=31 v=<nil> deviceDeleted")
		h.deadline(-1)
		if s := h.ev.Snapshot(); len(s.Devices) != 0 {
			t.Fatalf("devices after delete = %+v", s.Devices)
		}
	})
	t.Run("invalid rule refused", func(t *testing.T) {
		ev := New(Options{})
		if _, err := ev.SetRule(thresholdRule(0, "temp", Greater, 30, 0), t0); err == nil {
			t.Error("rule without id accepted")
		}
		if _, err := ev.SetRule(thresholdRule(1, "temp", "=>", 30, 0), t0); err == nil {
			t.Error("rule with op => accepted")
		}
	})
	t.Run("at most MaxRules", func(t *testing.T) {
		ev := New(Options{})
		for i := int64(1); i <= MaxRules; i++ {
			if _, err := ev.SetRule(thresholdRule(i, "temp", Greater, 30, 0), t0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ev.SetRule(thresholdRule(MaxRules+1, "temp", Greater, 30, 0), t0); err == nil {
			t.Fatal("rule beyond MaxRules accepted")
		}
		if _, err := ev.SetRule(thresholdRule(5, "temp", Less, 30, 0), t0); err != nil {
			t.Fatalf("editing a rule at MaxRules: %v", err)
		}
	})
}

func TestClearedByOperator(t *testing.T) {
	t.Run("threshold stays quiet until it clears", func(t *testing.T) {
		h := newHarness(t, thresholdRule(1, "temp", Greater, 30, 0))
		h.read("d", 0, "temp", 31)
		h.expect("raise r1/d @0 major n=1 first=0 last=0 alert=31 v=31")
		if !h.ev.ClearedByOperator(1, "d") {
			t.Fatal("no open alert found")
		}
		if h.ev.ClearedByOperator(1, "d") || h.ev.ClearedByOperator(1, "x") || h.ev.ClearedByOperator(9, "d") {
			t.Fatal("cleared an alert that is not open")
		}
		h.read("d", 1, "temp", 35)
		h.expect()
		h.read("d", 2, "temp", 20)
		h.read("d", 3, "temp", 31)
		h.expect("raise r1/d @3 major n=1 first=3 last=3 alert=31 v=31")
	})
	t.Run("silence waits for the device", func(t *testing.T) {
		h := newHarness(t, silenceRule(1, 60))
		h.read("d", 0)
		h.tick(60)
		h.expect("raise r1/d @60 critical n=1 first=60 last=60 alert=60 v=60")
		h.ev.ClearedByOperator(1, "d")
		h.tick(1000)
		h.deadline(-1)
		h.read("d", 1000)
		h.tick(1060)
		h.expect("raise r1/d @1060 critical n=1 first=1060 last=1060 alert=60 v=60")
	})
}

func TestWake(t *testing.T) {
	ev := New(Options{})
	if _, err := ev.SetRule(thresholdRule(1, "temp", Greater, 30, 100), t0); err != nil {
		t.Fatal(err)
	}
	woken := func() bool {
		select {
		case <-ev.Wake():
			return true
		default:
			return false
		}
	}
	ev.Reading("a", nil, at(0), []Sample{{"temp", 31}})
	if !woken() {
		t.Fatal("no wake for the first deadline")
	}
	if next, _ := ev.NextDeadline(); !next.Equal(at(100)) {
		t.Fatalf("NextDeadline = %s, want 100", sec(next))
	}
	ev.Reading("b", nil, at(10), []Sample{{"temp", 31}}) // later deadline: the timer stands
	if woken() {
		t.Fatal("woken for a later deadline")
	}
	if _, err := ev.SetRule(thresholdRule(2, "temp", Greater, 30, 5), at(20)); err != nil {
		t.Fatal(err)
	}
	ev.Reading("c", nil, at(20), []Sample{{"temp", 31}})
	if !woken() {
		t.Fatal("no wake for an earlier deadline")
	}
}

func TestNonFiniteReadingsIgnored(t *testing.T) {
	h := newHarness(t, thresholdRule(1, "temp", NotEqual, 30, 0), changedRule(2, "temp", ""))
	h.read("d", 0, "temp", 30)
	h.read("d", 1, "temp", math.NaN())
	h.read("d", 2, "temp", math.Inf(1))
	h.expect()
}

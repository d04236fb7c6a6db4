package alert

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// randomRules is a mix of every kind and scope over a small metric space,
// so that random events hit them often.
func randomRules(rng *rand.Rand) []Rule {
	var rs []Rule
	for id := int64(1); id <= 8; id++ {
		r := Rule{ID: id, Name: fmt.Sprint("r", id), Severity: Severities()[rng.IntN(5)], Enabled: true}
		switch rng.IntN(3) {
		case 0:
			r.Scope = Scope{Fleet: true}
		case 1:
			r.Scope = Scope{DeviceID: fmt.Sprint("d", rng.IntN(3))}
		default:
			r.Scope = Scope{Tags: map[string]string{"site": fmt.Sprint("s", rng.IntN(2))}}
		}
		switch rng.IntN(6) {
		case 0, 1, 2:
			c := Condition{Kind: Threshold, Metric: fmt.Sprint("m", rng.IntN(2)), Op: []Op{Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual}[rng.IntN(6)],
				Value: float64(rng.IntN(5)), ForSeconds: []int{0, 0, 5, 10}[rng.IntN(4)]}
			switch rng.IntN(3) {
			case 0:
				if c.Op != Equal && c.Op != NotEqual {
					c.Hysteresis = 2
				}
			case 1:
				if c.Op == Greater || c.Op == GreaterEqual {
					c.Clear = &Comparison{Op: Less, Value: c.Value - 3}
				}
			}
			r.Condition = c
		case 3:
			r.Condition = Condition{Kind: Silence, Seconds: 5 + rng.IntN(20)}
		case 4:
			r.Condition = Condition{Kind: Changed, Metric: fmt.Sprint("m", rng.IntN(2))}
		default:
			r.Condition = Condition{Kind: Changed, Property: "fw"}
		}
		rs = append(rs, r)
	}
	return rs
}

// TestRestartIsInvisible runs random events (readings, reported updates,
// ticks, tag changes, operator clears, rule edits, deletions) through one
// evaluator, and through another that is snapshotted, encoded as JSON and
// restored into a fresh evaluator at random moments. Both must emit the
// same transitions, and every emitted sequence must be a valid lifecycle.
func TestRestartIsInvisible(t *testing.T) {
	for seed := uint64(1); seed <= 120; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		rules := randomRules(rng)
		a, b := New(Options{UpdateEvery: -1}), New(Options{UpdateEvery: -1})
		for _, r := range rules {
			mustSet(t, a, r, t0)
			mustSet(t, b, r, t0)
		}
		now := t0
		open := map[Key]int{} // count of the open alert
		for step := 0; step < 300; step++ {
			prev := now // ClearedByOperator carries no time; the evaluator's clock stays
			now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			dev := fmt.Sprint("d", rng.IntN(3))
			var do func(ev *Evaluator) []Transition
			var what string
			switch k := rng.IntN(20); {
			case k < 10:
				var samples []Sample
				for m := 0; m < 2; m++ {
					if rng.IntN(3) > 0 {
						samples = append(samples, Sample{fmt.Sprint("m", m), float64(rng.IntN(9)) - 2})
					}
				}
				what = fmt.Sprintf("reading %s %v", dev, samples)
				do = func(ev *Evaluator) []Transition { return ev.Reading(dev, nil, now, samples) }
			case k < 12:
				doc := map[string]any{"fw": json.Number(fmt.Sprint(rng.IntN(3)))}
				what = fmt.Sprintf("reported %s %v", dev, doc)
				do = func(ev *Evaluator) []Transition { return ev.Reported(dev, nil, now, doc) }
			case k < 15:
				what = "tick"
				do = func(ev *Evaluator) []Transition { return ev.Tick(now) }
			case k < 17:
				tags := map[string]string{"site": fmt.Sprint("s", rng.IntN(2))}
				what = fmt.Sprintf("tags %s %v", dev, tags)
				do = func(ev *Evaluator) []Transition { return ev.DeviceChanged(dev, tags, now) }
			case k < 18:
				rule := int64(1 + rng.IntN(len(rules)))
				what = fmt.Sprintf("operator clears r%d/%s", rule, dev)
				now = prev
				do = func(ev *Evaluator) []Transition {
					if ev.ClearedByOperator(rule, dev) {
						return []Transition{{Kind: Clear, Alert: OpenAlert{RuleID: rule, DeviceID: dev}, Reason: ReasonOperator}}
					}
					return nil
				}
			case k < 19:
				i := rng.IntN(len(rules))
				switch rng.IntN(3) {
				case 0:
					rules[i].Enabled = !rules[i].Enabled
				case 1:
					rules[i].Name += "'"
				default:
					rules[i] = randomRules(rng)[i]
					rules[i].ID = int64(i + 1)
				}
				r := rules[i]
				what = fmt.Sprintf("set rule %+v", r)
				do = func(ev *Evaluator) []Transition { ts, err := ev.SetRule(r, now); must(t, err); return ts }
			default:
				what = "delete " + dev
				do = func(ev *Evaluator) []Transition { return ev.DeviceDeleted(dev, now) }
			}
			if testing.Verbose() && seed == debugSeed {
				t.Logf("step %d @%s %s", step, sec(now), what)
			}
			ta, tb := do(a), do(b)
			if !slices.Equal(show(ta), show(tb)) {
				t.Fatalf("seed %d step %d (%s): without restart\n %q\nwith restarts\n %q", seed, step, what, show(ta), show(tb))
			}
			checkLifecycle(t, open, ta, fmt.Sprintf("seed %d step %d (%s)", seed, step, what))
			if rng.IntN(10) == 0 {
				b = restartAt(t, b, rules, now, fmt.Sprintf("seed %d step %d", seed, step))
			}
		}
		checkOpen(t, a, open, true)
	}
}

// checkLifecycle: raises only when closed, repeats and updates only when
// open with counts going up by one per repeat, clears only when open.
func checkLifecycle(t *testing.T, open map[Key]int, ts []Transition, where string) {
	t.Helper()
	for _, tr := range ts {
		k := Key{tr.Alert.RuleID, tr.Alert.DeviceID}
		n, isOpen := open[k]
		switch tr.Kind {
		case Raise:
			if isOpen || tr.Alert.Count != 1 {
				t.Fatalf("%s: raise of %v (open %v, count %d)", where, k, isOpen, tr.Alert.Count)
			}
			open[k] = 1
		case Repeat:
			if !isOpen || tr.Alert.Count != n+1 {
				t.Fatalf("%s: repeat of %v (open %v, count %d after %d)", where, k, isOpen, tr.Alert.Count, n)
			}
			open[k] = n + 1
		case Update:
			if !isOpen || tr.Alert.Count != n {
				t.Fatalf("%s: update of %v", where, k)
			}
		case Clear:
			if !isOpen {
				t.Fatalf("%s: clear of %v, not open", where, k)
			}
			if tr.Reason == "" {
				t.Fatalf("%s: clear without a reason", where)
			}
			delete(open, k)
		}
	}
}

// checkOpen compares the evaluator's open alerts with what its transitions
// said: the count of each, or 1 when counts are not known.
func checkOpen(t *testing.T, ev *Evaluator, open map[Key]int, counts bool) {
	t.Helper()
	got := map[Key]int{}
	for _, a := range ev.Snapshot().Open {
		got[Key{a.RuleID, a.DeviceID}] = 1
		if counts {
			got[Key{a.RuleID, a.DeviceID}] = a.Count
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(open) {
		t.Fatalf("open alerts %v, transitions say %v", got, open)
	}
}

func restartAt(t *testing.T, ev *Evaluator, rules []Rule, now time.Time, where string) *Evaluator {
	t.Helper()
	b, err := json.Marshal(ev.Snapshot())
	must(t, err)
	var s Snapshot
	must(t, json.Unmarshal(b, &s))
	fresh := New(Options{UpdateEvery: -1})
	for _, r := range rules {
		mustSet(t, fresh, r, now)
	}
	ts, err := fresh.Restore(s, now)
	must(t, err)
	if len(ts) > 0 {
		t.Fatalf("%s: restore at %s emitted %q", where, sec(now), show(ts))
	}
	return fresh
}

func mustSet(t *testing.T, ev *Evaluator, r Rule, now time.Time) {
	t.Helper()
	if _, err := ev.SetRule(r, now); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentUse feeds one evaluator from several goroutines, as ingest,
// the timer loop and the rule API do; run with -race. Transitions of
// different calls may be handled in any order, so only their sums are
// checked: every (rule, device) raised as often as cleared, or once more
// when its alert is open at the end.
func TestConcurrentUse(t *testing.T) {
	ev := New(Options{})
	mustSet(t, ev, thresholdRule(1, "temp", Greater, 30, 1), t0)
	mustSet(t, ev, silenceRule(2, 2), t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	net := map[Key]int{}
	record := func(ts []Transition) {
		mu.Lock()
		defer mu.Unlock()
		for _, tr := range ts {
			k := Key{tr.Alert.RuleID, tr.Alert.DeviceID}
			switch tr.Kind {
			case Raise:
				net[k]++
			case Clear:
				net[k]--
			}
		}
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				now := at(float64(i) / 10)
				switch g {
				case 0:
					record(ev.Tick(now))
					ev.NextDeadline()
				case 1:
					ts, err := ev.SetRule(thresholdRule(1, "temp", Greater, float64(30+i%2), 1), now)
					if err != nil {
						t.Error(err)
						return
					}
					record(ts)
				default:
					record(ev.Reading(fmt.Sprint("d", i%5, g), nil, now, []Sample{{"temp", float64(25 + i%10)}}))
				}
			}
		}()
	}
	wg.Wait()
	open := map[Key]int{}
	for k, n := range net {
		if n != 0 {
			open[k] = n
		}
	}
	checkOpen(t, ev, open, false)
}

var debugSeed uint64 = 0

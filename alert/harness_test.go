package alert

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the start of every scenario; times in scenarios are seconds after it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func sec(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%g", t.Sub(t0).Seconds())
}

// show writes transitions one per line with every field, so that a test
// that compares them asserts all of them.
func show(ts []Transition) []string {
	var out []string
	for _, tr := range ts {
		a := tr.Alert
		s := fmt.Sprintf("%s r%d/%s @%s %s n=%d first=%s last=%s alert=%v v=%v",
			tr.Kind, a.RuleID, a.DeviceID, sec(tr.At), a.Severity, a.Count, sec(a.FirstAt), sec(a.LastAt), a.Value, tr.Value)
		if tr.Previous != nil {
			s += fmt.Sprintf(" prev=%v", tr.Previous)
		}
		if tr.Reason != "" {
			s += " " + string(tr.Reason)
		}
		out = append(out, s)
	}
	return out
}

// harness drives an evaluator on the test clock and collects what it emits.
type harness struct {
	t    *testing.T
	ev   *Evaluator
	tags map[string]map[string]string
	got  []string
}

func newHarness(t *testing.T, rules ...Rule) *harness {
	t.Helper()
	h := &harness{t: t, ev: New(Options{UpdateEvery: -1}), tags: map[string]map[string]string{}}
	for _, r := range rules {
		h.setRule(0, r)
	}
	h.expect()
	return h
}

func (h *harness) setRule(s float64, r Rule) {
	h.t.Helper()
	ts, err := h.ev.SetRule(r, at(s))
	if err != nil {
		h.t.Fatalf("SetRule(%+v): %v", r, err)
	}
	h.got = append(h.got, show(ts)...)
}

// read feeds a message: metric, value, metric, value…
func (h *harness) read(dev string, s float64, kv ...any) {
	h.t.Helper()
	var samples []Sample
	for i := 0; i < len(kv); i += 2 {
		samples = append(samples, Sample{Metric: kv[i].(string), Value: toF(kv[i+1])})
	}
	h.got = append(h.got, show(h.ev.Reading(dev, h.tags[dev], at(s), samples))...)
}

func toF(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a number: %v", v))
}

func (h *harness) reported(dev string, s float64, doc map[string]any) {
	h.got = append(h.got, show(h.ev.Reported(dev, h.tags[dev], at(s), doc))...)
}

func (h *harness) tick(s float64) { h.got = append(h.got, show(h.ev.Tick(at(s)))...) }

func (h *harness) device(dev string, s float64, tags map[string]string) {
	h.tags[dev] = tags
	h.got = append(h.got, show(h.ev.DeviceChanged(dev, tags, at(s)))...)
}

// expect compares what was emitted since the last expect.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	if want == nil {
		want = []string{}
	}
	got := h.got
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("transitions:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	h.got = nil
}

// deadline asserts NextDeadline (s < 0: none).
func (h *harness) deadline(s float64) {
	h.t.Helper()
	next, ok := h.ev.NextDeadline()
	switch {
	case s < 0 && ok:
		h.t.Fatalf("NextDeadline = %s, want none", sec(next))
	case s >= 0 && (!ok || !next.Equal(at(s))):
		h.t.Fatalf("NextDeadline = %s (%v), want %g", sec(next), ok, s)
	}
}

func thresholdRule(id int64, metric string, op Op, v float64, forSeconds int) Rule {
	return Rule{ID: id, Name: fmt.Sprintf("rule %d", id), Severity: Major, Enabled: true, Scope: Scope{Fleet: true},
		Condition: Condition{Kind: Threshold, Metric: metric, Op: op, Value: v, ForSeconds: forSeconds}}
}

func silenceRule(id int64, secs int) Rule {
	return Rule{ID: id, Name: fmt.Sprintf("rule %d", id), Severity: Critical, Enabled: true, Scope: Scope{Fleet: true},
		Condition: Condition{Kind: Silence, Seconds: secs}}
}

func changedRule(id int64, metric, property string) Rule {
	return Rule{ID: id, Name: fmt.Sprintf("rule %d", id), Severity: Info, Enabled: true, Scope: Scope{Fleet: true},
		Condition: Condition{Kind: Changed, Metric: metric, Property: property}}
}

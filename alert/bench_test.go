package alert

import (
	"fmt"
	"testing"
	"time"
)

// benchFleet is 1,000 devices on 20 sites and 5 kinds, with 100 rules of
// every scope and kind: 40 threshold rules on sites, 20 on the fleet (with
// hysteresis and forSeconds), 20 on single devices, 10 silence rules on
// kinds and 10 changed rules (metrics and a reported property).
func benchFleet(b *testing.B, rules bool) (*Evaluator, []string, []map[string]string) {
	ev := New(Options{})
	ids := make([]string, 1000)
	tags := make([]map[string]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%04d", i)
		tags[i] = map[string]string{"site": fmt.Sprintf("site-%d", i%20), "kind": fmt.Sprintf("kind-%d", i%5), "floor": fmt.Sprint(i % 7)}
	}
	if !rules {
		return ev, ids, tags
	}
	var rs []Rule
	id := int64(0)
	add := func(scope Scope, c Condition) {
		id++
		rs = append(rs, Rule{ID: id, Name: fmt.Sprintf("rule %d", id), Severity: Major, Enabled: true, Scope: scope, Condition: c})
	}
	for i := 0; i < 40; i++ {
		add(Scope{Tags: map[string]string{"site": fmt.Sprintf("site-%d", i%20)}},
			Condition{Kind: Threshold, Metric: fmt.Sprintf("m%d", i%10), Op: Greater, Value: 90, ForSeconds: 60 * (i % 3)})
	}
	for i := 0; i < 20; i++ {
		add(Scope{Fleet: true}, Condition{Kind: Threshold, Metric: fmt.Sprintf("m%d", i%10), Op: Less, Value: -50, Hysteresis: 1, ForSeconds: 30 * (i % 2)})
	}
	for i := 0; i < 20; i++ {
		add(Scope{DeviceID: ids[i*50]}, Condition{Kind: Threshold, Metric: fmt.Sprintf("m%d", i%10), Op: GreaterEqual, Value: 1000})
	}
	for i := 0; i < 10; i++ {
		add(Scope{Tags: map[string]string{"kind": fmt.Sprintf("kind-%d", i%5)}}, Condition{Kind: Silence, Seconds: 300 + i})
	}
	for i := 0; i < 5; i++ {
		add(Scope{Fleet: true}, Condition{Kind: Changed, Metric: fmt.Sprintf("m%d", 9-i)})
		add(Scope{Tags: map[string]string{"site": fmt.Sprintf("site-%d", i)}}, Condition{Kind: Changed, Property: "firmware"})
	}
	for _, r := range rs {
		if _, err := ev.SetRule(r, t0); err != nil {
			b.Fatal(err)
		}
	}
	return ev, ids, tags
}

// messages makes per-device readings of 10 metrics; quiet readings stay in
// range (no transitions), others cross thresholds at random.
func messages(n int, quiet bool) [][]Sample {
	msgs := make([][]Sample, n)
	x := uint32(12345)
	for i := range msgs {
		msgs[i] = make([]Sample, 10)
		for j := range msgs[i] {
			x = x*1664525 + 1013904223
			v := float64(20 + j)
			if !quiet {
				v = float64(x>>8%200) - 60 // -60..139: crosses > 90 and < -50 often
			}
			msgs[i][j] = Sample{Metric: fmt.Sprintf("m%d", j), Value: v}
		}
	}
	return msgs
}

func benchmarkEvaluate(b *testing.B, rules, quiet bool) {
	ev, ids, tags := benchFleet(b, rules)
	msgs := messages(4096, quiet)
	now := t0
	for i, id := range ids { // every device known, baselines set
		ev.Reading(id, tags[i], now, msgs[i])
	}
	transitions := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond) // every device speaks once a second
		d := i % len(ids)
		transitions += len(ev.Reading(ids[d], tags[d], now, msgs[i%len(msgs)]))
	}
	b.ReportMetric(float64(transitions)/float64(b.N), "transitions/op")
}

// BenchmarkEvaluate is one message of 10 metrics from one of 1,000 devices
// through 100 rules, values in range: the steady cost ingest pays.
func BenchmarkEvaluate(b *testing.B) { benchmarkEvaluate(b, true, true) }

// BenchmarkEvaluateFlapping is the same with values crossing thresholds
// at random, so that alerts raise, repeat and clear all the time.
func BenchmarkEvaluateFlapping(b *testing.B) { benchmarkEvaluate(b, true, false) }

// BenchmarkEvaluateNoRules is the baseline: the same messages, no rules.
func BenchmarkEvaluateNoRules(b *testing.B) { benchmarkEvaluate(b, false, true) }

// BenchmarkSetRule is editing one rule of 100 over 1,000 devices (every
// device is replanned).
func BenchmarkSetRule(b *testing.B) {
	ev, ids, tags := benchFleet(b, true)
	msgs := messages(len(ids), true)
	for i, id := range ids {
		ev.Reading(id, tags[i], t0, msgs[i])
	}
	r := Rule{ID: 1, Name: "edited", Severity: Minor, Enabled: true, Scope: Scope{Tags: map[string]string{"site": "site-1"}},
		Condition: Condition{Kind: Threshold, Metric: "m1", Op: Greater, Value: 90}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Name = fmt.Sprintf("edited %d", i%2)
		if _, err := ev.SetRule(r, t0); err != nil {
			b.Fatal(err)
		}
	}
}

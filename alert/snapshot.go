package alert

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"
)

// Snapshot is the evaluator's state as plain data, to carry it across a
// restart. Each part can come from where the caller keeps it: Open from the
// alerts table (state active or acknowledged), Devices from the device
// registry (tags and last activity), and the rest from a snapshot the
// caller saved at shutdown (or periodically). What is missing only delays
// alerts: a pending forSeconds that is lost starts again at the next
// raising reading; a lost baseline is taken again from the next value.
type Snapshot struct {
	Devices    []DeviceState `json:"devices"`
	Open       []OpenAlert   `json:"open"`
	Pending    []Pending     `json:"pending"`
	Suppressed []Key         `json:"suppressed"`
	InBand     []Key         `json:"inBand"`
	Baselines  []Baseline    `json:"baselines"`
}

// DeviceState is a device's tags and the time of its last message (zero:
// never heard from, which silence rules do not watch).
type DeviceState struct {
	ID       string            `json:"id"`
	Tags     map[string]string `json:"tags"`
	LastSeen time.Time         `json:"lastSeen"`
}

// Pending is a threshold that holds and waits for its forSeconds: since the
// reading at Since, latest value Value. It raises at Since+forSeconds (or
// repeats, when an alert is open for the same rule and device).
type Pending struct {
	RuleID   int64     `json:"ruleId"`
	DeviceID string    `json:"deviceId"`
	Since    time.Time `json:"since"`
	Value    float64   `json:"value"`
}

// Key names a (rule, device). Suppressed lists those whose alert an
// operator cleared while the condition held (no new alert until it clears);
// InBand lists open threshold alerts whose latest reading no longer raises
// but has not cleared either (inside the hysteresis band), so that the next
// raising reading counts as a repeat. Open alerts not in InBand are taken
// as still raising.
type Key struct {
	RuleID   int64  `json:"ruleId"`
	DeviceID string `json:"deviceId"`
}

// Baseline is the last value of a metric or reported property (path
// without "properties.reported.") that a changed rule compares against.
type Baseline struct {
	DeviceID string `json:"deviceId"`
	Metric   string `json:"metric,omitempty"`
	Property string `json:"property,omitempty"`
	Value    any    `json:"value"`
}

// Snapshot exports the state, sorted so that equal states give equal
// snapshots.
func (e *Evaluator) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Snapshot{Devices: []DeviceState{}, Open: []OpenAlert{}, Pending: []Pending{}, Suppressed: []Key{}, InBand: []Key{}, Baselines: []Baseline{}}
	for _, d := range e.sortedDevices() {
		s.Devices = append(s.Devices, DeviceState{ID: d.id, Tags: copyTags(d.tags), LastSeen: d.lastSeen})
		for _, tr := range d.tracks {
			switch {
			case tr == nil:
				continue
			case tr.open:
				s.Open = append(s.Open, tr.alert())
				if tr.rule.Condition.Kind == Threshold && !tr.firing && !tr.pending {
					s.InBand = append(s.InBand, Key{tr.rule.ID, d.id})
				}
			case tr.suppressed:
				s.Suppressed = append(s.Suppressed, Key{tr.rule.ID, d.id})
			}
			if tr.pending {
				s.Pending = append(s.Pending, Pending{tr.rule.ID, d.id, tr.since, tr.pendingNum})
			}
		}
		for _, m := range sortedKeysOf(d.lastNum) {
			s.Baselines = append(s.Baselines, Baseline{DeviceID: d.id, Metric: m, Value: d.lastNum[m]})
		}
		for _, p := range sortedKeysOf(d.lastProp) {
			s.Baselines = append(s.Baselines, Baseline{DeviceID: d.id, Property: p, Value: decodeCanonical(d.lastProp[p])})
		}
	}
	return s
}

func sortedKeysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ErrNotFresh is returned by Restore on an evaluator that has seen devices.
var ErrNotFresh = errors.New("alert: restore into an evaluator that already has devices")

// Restore loads a snapshot into a new evaluator whose rules are set, then
// advances time to now: timers that ran out while the hub was down fire at
// their own time (a forSeconds that began before the restart raises at
// Since+forSeconds; a device silent long enough raises at its last message
// plus the rule's seconds). Open alerts whose rule was deleted or disabled,
// whose device is gone or out of the rule's scope, clear with that reason;
// pending timers and baselines that no longer apply are dropped.
func (e *Evaluator) Restore(s Snapshot, now time.Time) ([]Transition, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.devices) > 0 {
		return nil, ErrNotFresh
	}
	var out []Transition
	for _, ds := range s.Devices {
		d := &device{id: ds.ID, tags: copyTags(ds.Tags), lastSeen: ds.LastSeen.Round(0), plan: e.plans[""]}
		e.devices[ds.ID] = d
		e.replan(d, &out)
	}
	for _, b := range s.Baselines {
		d := e.devices[b.DeviceID]
		if d == nil {
			continue
		}
		switch {
		case b.Metric != "":
			if mr := d.plan.metrics[b.Metric]; mr != nil && len(mr.changed) > 0 {
				if f, ok := toFloat(b.Value); ok {
					if d.lastNum == nil {
						d.lastNum = map[string]float64{}
					}
					d.lastNum[b.Metric] = f
				}
			}
		case d.plan.watches(strings.TrimPrefix(b.Property, reportedPrefix)):
			if canon, err := canonical(b.Value); err == nil {
				if d.lastProp == nil {
					d.lastProp = map[string]string{}
				}
				d.lastProp[strings.TrimPrefix(b.Property, reportedPrefix)] = canon
			}
		}
	}
	for _, a := range s.Open {
		tr, reason := e.restoredTrack(a.RuleID, a.DeviceID)
		if tr == nil {
			out = append(out, Transition{Kind: Clear, At: now.Round(0), Alert: a, Reason: reason})
			continue
		}
		tr.open, tr.firing = true, true
		tr.severity, tr.firstAt, tr.lastAt, tr.lastEmit, tr.count = a.Severity, a.FirstAt.Round(0), a.LastAt.Round(0), a.LastAt.Round(0), max(a.Count, 1)
		if tr.rule.pathKey != "" {
			tr.prop, _ = canonical(a.Value)
		} else {
			tr.num, _ = toFloat(a.Value)
		}
		if tr.rule.Condition.Kind == Silence {
			e.unschedule(tr) // an open silence alert waits for a message, not a timer
		}
	}
	for _, k := range s.InBand {
		if tr, _ := e.restoredTrack(k.RuleID, k.DeviceID); tr != nil && tr.open {
			tr.firing = false
		}
	}
	for _, k := range s.Suppressed {
		if tr, _ := e.restoredTrack(k.RuleID, k.DeviceID); tr != nil && !tr.open && tr.rule.Condition.Kind != Changed {
			tr.suppressed = true
			e.unschedule(tr)
		}
	}
	for _, p := range s.Pending {
		tr, _ := e.restoredTrack(p.RuleID, p.DeviceID)
		if tr == nil || tr.rule.Condition.Kind != Threshold || tr.suppressed {
			continue
		}
		tr.pending, tr.since, tr.pendingNum = true, p.Since.Round(0), p.Value
		if tr.open {
			tr.firing = false // holding again after a dip inside the band
		}
		e.schedule(tr, tr.since.Add(seconds(tr.rule.Condition.ForSeconds)))
	}
	for _, d := range e.devices { // tracks made for nothing (unknown keys) are dropped
		for i, tr := range d.tracks {
			if tr != nil && !tr.open && !tr.suppressed && !tr.pending && tr.rule.Condition.Kind != Silence {
				d.tracks[i] = nil
			}
		}
	}
	e.advance(now, &out)
	e.signal()
	return out, nil
}

// restoredTrack finds or makes the track of (rule, device), or says why
// there is none.
func (e *Evaluator) restoredTrack(ruleID int64, deviceID string) (*track, Reason) {
	r := e.rules[ruleID]
	switch {
	case r == nil:
		return nil, ReasonRuleDeleted
	case !r.Enabled:
		return nil, ReasonRuleDisabled
	}
	d := e.devices[deviceID]
	if d == nil {
		return nil, ReasonDeviceDeleted
	}
	i, ok := d.plan.index(ruleID)
	if !ok {
		return nil, ReasonOutOfScope
	}
	return e.trackFor(d, i), ""
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

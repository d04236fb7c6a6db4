package alert

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// MaxRules is how many rules an Evaluator holds, enabled or not.
const MaxRules = 1000

// Sample is one numeric reading of a message: a metric and its value.
type Sample struct {
	Metric string
	Value  float64
}

// TransitionKind is what happened to an alert.
type TransitionKind string

// The transitions an Evaluator emits.
const (
	// Raise opens a new alert for a (rule, device) that had none.
	Raise TransitionKind = "raise"
	// Repeat: the condition fired again while the alert was open (a new
	// crossing after the value fell back inside the hysteresis band, or
	// another change); Count went up.
	Repeat TransitionKind = "repeat"
	// Update is not a state change: the condition still holds and the open
	// alert's last time and value moved on. Emitted at most once per
	// Options.UpdateEvery per alert, so the caller's copy stays close to
	// current without a write per message. Webhooks ignore it.
	Update TransitionKind = "update"
	// Clear closes the open alert; Reason says why.
	Clear TransitionKind = "clear"
)

// Reason says why an alert was cleared.
type Reason string

// The reasons for a clear.
const (
	ReasonCondition     Reason = "condition"     // the clear condition held, or a silent device spoke
	ReasonOutOfScope    Reason = "outOfScope"    // the device's tags or the rule's scope changed
	ReasonRuleChanged   Reason = "ruleChanged"   // the rule's condition was edited
	ReasonRuleDisabled  Reason = "ruleDisabled"  // the rule was disabled
	ReasonRuleDeleted   Reason = "ruleDeleted"   // the rule was deleted
	ReasonDeviceDeleted Reason = "deviceDeleted" // the device was deleted
	ReasonOperator      Reason = "operator"      // an operator cleared it (Alert.Clear)
)

// OpenAlert is the evaluator's view of an alert that has not cleared.
// Value is a JSON value: a float64 for metrics (threshold, changed metric)
// and for silence (the seconds of silence); for a reported property, the
// property's value (string, float64, bool, nil, map[string]any or []any).
type OpenAlert struct {
	RuleID   int64     `json:"ruleId"`
	DeviceID string    `json:"deviceId"`
	Severity Severity  `json:"severity"`
	FirstAt  time.Time `json:"firstAt"`
	LastAt   time.Time `json:"lastAt"`
	Count    int       `json:"count"`
	Value    any       `json:"value"`
}

// Transition is one change to an alert. Alert is the alert as it stands
// after the change (for a Clear, as it stood when it cleared).
type Transition struct {
	Kind  TransitionKind
	At    time.Time // when it happened (for a raise after forSeconds: when the time was up)
	Alert OpenAlert
	// Value is what caused the transition: the reading that raised,
	// repeated or cleared, the new value of a changed metric or property,
	// the seconds of silence (raise) or how long the device was silent
	// (clear). Nil for clears that no reading caused.
	Value any
	// Previous is the value before a change (changed conditions only).
	Previous any
	Reason   Reason // Clear only
}

// Options tune an Evaluator.
type Options struct {
	// UpdateEvery bounds how often an open alert whose condition keeps
	// holding emits an Update. Zero means one minute; negative, never.
	UpdateEvery time.Duration
}

// Evaluator runs alert rules over a fleet's events. It is an in-memory
// state machine per (rule, device); it never reads a clock and never
// sleeps: every event carries its time, and Tick advances time for the
// timers. It is safe for concurrent use.
type Evaluator struct {
	mu          sync.Mutex
	updateEvery time.Duration

	rules    map[int64]*rule // every rule, enabled or not
	fleet    []*rule         // enabled rules scoped to the fleet
	byDevice map[string][]*rule
	byTag    map[tagPair][]*rule // each tag-scoped rule under its first tag
	plans    map[string]*plan    // shared by devices that the same rules watch

	devices map[string]*device
	timers  timerHeap
	now     time.Time // the latest time seen; timers at or before it have fired

	announced   time.Time // the deadline NextDeadline last returned
	announcedOK bool
	wake        chan struct{}
}

// rule is a Rule with what evaluation needs precomputed.
type rule struct {
	Rule
	pathKey string   // changed property: the path without the twin prefix
	path    []string // its names
}

type tagPair struct{ k, v string }

// plan is the rules that watch one set of devices, indexed for events.
type plan struct {
	rules   []*rule // sorted by ID; tracks are indexed alike
	metrics map[string]*metricRules
	silence []int32
	props   []propGroup
}

type metricRules struct{ threshold, changed []int32 }

type propGroup struct {
	key   string
	path  []string
	rules []int32
}

// device is what the evaluator knows of one device.
type device struct {
	id       string
	tags     map[string]string
	lastSeen time.Time // zero: never heard from
	plan     *plan
	tracks   []*track // parallel to plan.rules; nil entries have no state
	lastNum  map[string]float64
	lastProp map[string]string // canonical JSON
}

// track is the state of one (rule, device) that has any.
type track struct {
	rule *rule
	dev  *device

	open     bool
	severity Severity
	firstAt  time.Time
	lastAt   time.Time
	count    int
	num      float64 // value of a metric or silence alert
	prop     string  // value of a property alert, canonical JSON
	lastEmit time.Time

	firing     bool // threshold: the latest reading raises
	suppressed bool // an operator cleared the alert; wait for the condition to clear
	pending    bool // threshold: holding, waiting for forSeconds
	since      time.Time
	pendingNum float64

	at    time.Time // timer deadline
	index int       // in the timer heap; -1 when not scheduled
}

// New returns an Evaluator with no rules.
func New(opts Options) *Evaluator {
	every := opts.UpdateEvery
	if every == 0 {
		every = time.Minute
	}
	e := &Evaluator{
		updateEvery: every,
		rules:       map[int64]*rule{},
		byDevice:    map[string][]*rule{},
		byTag:       map[tagPair][]*rule{},
		plans:       map[string]*plan{},
		devices:     map[string]*device{},
		wake:        make(chan struct{}, 1),
	}
	e.plans[""] = e.buildPlan(nil)
	return e
}

// SetRule adds a rule or replaces the rule with its ID. Editing a rule's
// condition clears its open alerts (ReasonRuleChanged) and restarts its
// timers; disabling it clears them (ReasonRuleDisabled); narrowing its scope
// clears those of devices no longer in scope (ReasonOutOfScope). Editing
// only the name or severity keeps open alerts as they are (they keep the
// severity they were raised with). A new silence rule starts watching every
// device heard from, measured from its last message.
func (e *Evaluator) SetRule(r Rule, now time.Time) ([]Transition, error) {
	if r.ID <= 0 {
		return nil, invalid("id", "a rule needs a positive id to be evaluated, got %d", r.ID)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	nr := &rule{Rule: r}
	nr.Scope.Tags = copyTags(r.Scope.Tags)
	if r.Condition.Clear != nil {
		c := *r.Condition.Clear
		nr.Condition.Clear = &c
	}
	if r.Condition.Kind == Changed && r.Condition.Property != "" {
		nr.path, _ = PropertyPath(r.Condition.Property) // valid: checked above
		nr.pathKey = strings.Join(nr.path, ".")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.rules[r.ID]
	if old == nil && len(e.rules) >= MaxRules {
		return nil, fmt.Errorf("alert: %d rules already; at most %d", len(e.rules), MaxRules)
	}
	var out []Transition
	e.advance(now, &out)
	if old != nil && old.Enabled {
		switch {
		case !r.Enabled:
			e.retireRule(old.ID, ReasonRuleDisabled, &out)
		case !sameCondition(old.Condition, r.Condition):
			e.retireRule(old.ID, ReasonRuleChanged, &out)
		}
	}
	e.rules[r.ID] = nr
	e.reindex(&out)
	e.fire(&out)
	e.signal()
	return out, nil
}

// RemoveRule deletes a rule; its open alerts clear with ReasonRuleDeleted.
func (e *Evaluator) RemoveRule(id int64, now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(now, &out)
	old := e.rules[id]
	if old == nil {
		return out
	}
	if old.Enabled {
		e.retireRule(id, ReasonRuleDeleted, &out)
	}
	delete(e.rules, id)
	e.reindex(&out)
	e.signal()
	return out
}

// Reading feeds the readings of one committed message. Call it for every
// message, also one without numeric fields: any message ends a silence.
// t is the hub's time for the message (when it was received), never the
// device's own timestamp, since timers fire by it. tags are the device's
// tags; nil means "as the evaluator last saw them".
//
// Timers due at or before t fire first, so the outcome does not depend on
// whether Tick ran on time: a reading at exactly the end of forSeconds finds
// the alert raised.
func (e *Evaluator) Reading(deviceID string, tags map[string]string, t time.Time, samples []Sample) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(t, &out)
	d := e.device(deviceID, tags, &out)
	e.seen(d, t, &out)
	if p := d.plan; len(p.metrics) > 0 {
		for _, s := range samples {
			mr := p.metrics[s.Metric]
			if mr == nil || s.Value != s.Value || math.IsInf(s.Value, 0) {
				continue // ingest never makes NaN or ±Inf; no comparison means anything with them
			}
			for _, i := range mr.threshold {
				e.threshold(d, i, s.Value, t, &out)
			}
			if len(mr.changed) > 0 {
				e.metricChanged(d, mr.changed, s.Metric, s.Value, t, &out)
			}
		}
	}
	e.fire(&out) // a reading older than the clock may have set a timer already due
	e.signal()
	return out
}

// Reported feeds a device's reported properties after an update: the whole
// reported document, as JSON decoding makes it (json.Number or float64 for
// numbers). A reported update counts as a message for silence rules.
func (e *Evaluator) Reported(deviceID string, tags map[string]string, t time.Time, reported map[string]any) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(t, &out)
	d := e.device(deviceID, tags, &out)
	e.seen(d, t, &out)
	for _, g := range d.plan.props {
		v, ok := lookup(reported, g.path)
		if !ok {
			continue // a property that is not there has no value to compare
		}
		canon, err := canonical(v)
		if err != nil {
			continue // not JSON (the caller passed a Go value JSON cannot hold)
		}
		prev, had := d.lastProp[g.key]
		if had && prev == canon {
			continue
		}
		if d.lastProp == nil {
			d.lastProp = map[string]string{}
		}
		d.lastProp[g.key] = canon
		if !had {
			continue // the first value seen is the baseline
		}
		for _, i := range g.rules {
			tr := e.trackFor(d, i)
			tr.prop = canon
			e.changed(tr, t, decodeCanonical(canon), decodeCanonical(prev), &out)
		}
	}
	e.signal()
	return out
}

// Heard tells the evaluator that a device was heard from at t elsewhere
// (a message another instance of a cluster stored, read from the store):
// like a message without readings when t is after the last time the
// evaluator has for the device, otherwise nothing. It does not advance
// time, so that a Tick after it finds the device's silence as the store
// tells it.
func (e *Evaluator) Heard(deviceID string, t time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	d := e.device(deviceID, nil, &out)
	if !t.After(d.lastSeen) {
		return out
	}
	e.seen(d, t, &out)
	e.signal()
	return out
}

// Tick advances time to now and fires the timers due: forSeconds that ran
// out and devices that became silent. Call it when NextDeadline comes.
func (e *Evaluator) Tick(now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(now, &out)
	e.signal()
	return out
}

// NextDeadline is when the next timer is due; false when none is. A Tick
// then may find nothing to do, when the device spoke in the meantime (its
// silence timer is moved lazily, not on every message).
func (e *Evaluator) NextDeadline() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.announcedOK = len(e.timers) > 0
	if !e.announcedOK {
		return time.Time{}, false
	}
	e.announced = e.timers[0].at
	return e.announced, true
}

// Wake receives a value when a deadline earlier than the one NextDeadline
// last returned appeared; the caller then asks NextDeadline again and resets
// its timer.
func (e *Evaluator) Wake() <-chan struct{} { return e.wake }

// DeviceChanged tells the evaluator a device's tags (also for a new device).
// Rules whose scope the device left clear their alerts on it
// (ReasonOutOfScope); rules it entered watch it from its next message.
func (e *Evaluator) DeviceChanged(deviceID string, tags map[string]string, now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(now, &out)
	if tags == nil {
		tags = map[string]string{}
	}
	e.device(deviceID, tags, &out)
	e.fire(&out)
	e.signal()
	return out
}

// DeviceDeleted forgets a device; its open alerts clear with
// ReasonDeviceDeleted.
func (e *Evaluator) DeviceDeleted(deviceID string, now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	e.advance(now, &out)
	d := e.devices[deviceID]
	if d == nil {
		return out
	}
	for i, tr := range d.tracks {
		if tr != nil {
			e.retire(tr, ReasonDeviceDeleted, &out)
			d.tracks[i] = nil
		}
	}
	delete(e.devices, deviceID)
	e.signal()
	return out
}

// ClearedByOperator tells the evaluator that an operator cleared the open
// alert of (rule, device). No new alert is raised for it until its condition
// has cleared on its own (a threshold reading that clears, a message from a
// silent device), so that clearing a problem that persists quiets it; a
// changed alert simply closes. It reports whether an alert was open.
func (e *Evaluator) ClearedByOperator(ruleID int64, deviceID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[deviceID]
	if d == nil {
		return false
	}
	i, ok := d.plan.index(ruleID)
	if !ok {
		return false
	}
	tr := d.trackAt(i)
	if tr == nil || !tr.open {
		return false
	}
	tr.open, tr.firing, tr.pending = false, false, false
	switch tr.rule.Condition.Kind {
	case Threshold:
		e.unschedule(tr)
		tr.suppressed = true
	case Silence:
		tr.suppressed = true // rescheduled when the device speaks
	case Changed:
		d.tracks[i] = nil
	}
	return true
}

package alert

import (
	"sort"
	"strings"
	"time"
)

// device returns the device, creating it or taking its new tags (nil tags:
// unchanged), and replans it when its tags changed.
func (e *Evaluator) device(id string, tags map[string]string, out *[]Transition) *device {
	d := e.devices[id]
	if d == nil {
		d = &device{id: id, tags: copyTags(tags), plan: e.plans[""]}
		e.devices[id] = d
		e.replan(d, out)
		return d
	}
	if tags != nil && !sameTags(d.tags, tags) {
		d.tags = copyTags(tags)
		e.replan(d, out)
	}
	return d
}

// seen records a message (or reported update) at t: open silence alerts of
// the device clear and its silence timers run again.
func (e *Evaluator) seen(d *device, t time.Time, out *[]Transition) {
	prev := d.lastSeen
	if t.After(prev) {
		d.lastSeen = t
	}
	for _, i := range d.plan.silence {
		tr := e.trackFor(d, i)
		switch {
		case tr.open:
			var silent any // unknown when restored without a last-seen time
			if !prev.IsZero() {
				silent = max(t.Sub(prev), 0).Seconds()
			}
			e.clear(tr, t, silent, ReasonCondition, out)
		case tr.suppressed:
			tr.suppressed = false
		}
		if tr.index < 0 {
			e.schedule(tr, d.lastSeen.Add(seconds(tr.rule.Condition.Seconds)))
		}
	}
}

// threshold applies one reading to a threshold rule (plan index i). The
// state is kept only while there is something to remember: an open or
// suppressed alert, or a forSeconds timer.
func (e *Evaluator) threshold(d *device, i int32, v float64, t time.Time, out *[]Transition) {
	tr := d.trackAt(i)
	c := &d.plan.rules[i].Condition
	raises := c.Op.Holds(v, c.Value)
	if tr == nil {
		if !raises {
			return
		}
		tr = e.trackFor(d, i)
	}
	switch {
	case tr.open:
		switch {
		case c.Clears(v):
			e.clear(tr, t, v, ReasonCondition, out)
		case !raises: // inside the hysteresis band: still open, no longer firing
			tr.firing = false
			e.stopHolding(tr)
		case tr.firing:
			tr.lastAt, tr.num = t, v
			e.maybeUpdate(tr, out)
		case c.ForSeconds == 0:
			tr.num = v
			e.repeat(tr, t, v, nil, out)
		default:
			e.hold(tr, t, v)
		}
	case tr.suppressed:
		if c.Clears(v) {
			tr.suppressed = false
		}
	case !raises:
		e.stopHolding(tr)
	case c.ForSeconds == 0:
		tr.num = v
		e.raise(tr, t, v, nil, out)
	default:
		e.hold(tr, t, v)
	}
	if !tr.open && !tr.suppressed && !tr.pending {
		d.tracks[i] = nil
	}
}

// hold starts (or continues) the forSeconds wait of a raising reading.
func (e *Evaluator) hold(tr *track, t time.Time, v float64) {
	tr.pendingNum = v
	if !tr.pending {
		tr.pending, tr.since = true, t
		e.schedule(tr, t.Add(seconds(tr.rule.Condition.ForSeconds)))
	}
}

func (e *Evaluator) stopHolding(tr *track) {
	tr.pending = false
	e.unschedule(tr)
}

// metricChanged compares a metric's reading with the last one and fires the
// changed rules (plan indexes) when it differs. The first reading seen is
// the baseline and fires nothing.
func (e *Evaluator) metricChanged(d *device, rules []int32, metric string, v float64, t time.Time, out *[]Transition) {
	prev, had := d.lastNum[metric]
	if had && prev == v {
		return
	}
	if !had {
		if d.lastNum == nil {
			d.lastNum = map[string]float64{}
		}
		d.lastNum[strings.Clone(metric)] = v // the key outlives the caller's message
		return
	}
	d.lastNum[metric] = v
	for _, i := range rules {
		tr := e.trackFor(d, i)
		tr.num = v
		e.changed(tr, t, v, prev, out)
	}
}

// changed raises a changed alert, or repeats the open one: such alerts
// stay open until an operator clears them.
func (e *Evaluator) changed(tr *track, t time.Time, value, prev any, out *[]Transition) {
	if tr.open {
		e.repeat(tr, t, value, prev, out)
		return
	}
	e.raise(tr, t, value, prev, out)
}

func (e *Evaluator) raise(tr *track, at time.Time, value, prev any, out *[]Transition) {
	tr.open, tr.firing, tr.suppressed = true, true, false
	tr.severity = tr.rule.Severity
	tr.firstAt, tr.lastAt, tr.lastEmit, tr.count = at, at, at, 1
	e.emit(Raise, tr, at, value, prev, "", out)
}

func (e *Evaluator) repeat(tr *track, at time.Time, value, prev any, out *[]Transition) {
	tr.firing = true
	tr.count++
	tr.lastAt, tr.lastEmit = at, at
	e.emit(Repeat, tr, at, value, prev, "", out)
}

func (e *Evaluator) maybeUpdate(tr *track, out *[]Transition) {
	if e.updateEvery > 0 && tr.lastAt.Sub(tr.lastEmit) >= e.updateEvery {
		tr.lastEmit = tr.lastAt
		e.emit(Update, tr, tr.lastAt, tr.num, nil, "", out)
	}
}

func (e *Evaluator) clear(tr *track, at time.Time, value any, reason Reason, out *[]Transition) {
	e.emit(Clear, tr, at, value, nil, reason, out)
	tr.open, tr.firing = false, false
	e.stopHolding(tr)
}

func (e *Evaluator) emit(kind TransitionKind, tr *track, at time.Time, value, prev any, reason Reason, out *[]Transition) {
	*out = append(*out, Transition{Kind: kind, At: at, Alert: tr.alert(), Value: value, Previous: prev, Reason: reason})
}

func (tr *track) alert() OpenAlert {
	var v any = tr.num
	if tr.rule.pathKey != "" {
		v = decodeCanonical(tr.prop)
	}
	return OpenAlert{RuleID: tr.rule.ID, DeviceID: tr.dev.id, Severity: tr.severity,
		FirstAt: tr.firstAt, LastAt: tr.lastAt, Count: tr.count, Value: v}
}

// retire ends a track whose rule no longer watches the device.
func (e *Evaluator) retire(tr *track, reason Reason, out *[]Transition) {
	if tr.open {
		e.clear(tr, e.now, nil, reason, out)
	}
	tr.pending = false
	e.unschedule(tr)
}

// retireRule ends every track of a rule, before it changes or goes.
func (e *Evaluator) retireRule(id int64, reason Reason, out *[]Transition) {
	for _, d := range e.sortedDevices() {
		if i, ok := d.plan.index(id); ok {
			if tr := d.trackAt(i); tr != nil {
				e.retire(tr, reason, out)
				d.tracks[i] = nil
			}
		}
	}
}

func (e *Evaluator) sortedDevices() []*device {
	ds := make([]*device, 0, len(e.devices))
	for _, d := range e.devices {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].id < ds[j].id })
	return ds
}

func (d *device) trackAt(i int32) *track {
	if d.tracks == nil {
		return nil
	}
	return d.tracks[i]
}

func (d *device) ensureTracks() []*track {
	if d.tracks == nil {
		d.tracks = make([]*track, len(d.plan.rules))
	}
	return d.tracks
}

// trackFor returns the track of plan index i, creating it.
func (e *Evaluator) trackFor(d *device, i int32) *track {
	ts := d.ensureTracks()
	if ts[i] == nil {
		ts[i] = &track{rule: d.plan.rules[i], dev: d, index: -1}
	}
	return ts[i]
}

func copyTags(tags map[string]string) map[string]string {
	c := make(map[string]string, len(tags))
	for k, v := range tags {
		c[k] = v
	}
	return c
}

func sameTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameCondition(a, b Condition) bool {
	ac, bc := a.Clear, b.Clear
	a.Clear, b.Clear = nil, nil
	return a == b && (ac == nil) == (bc == nil) && (ac == nil || *ac == *bc)
}

package alert

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"math"
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
			e.clear(tr, t, t.Sub(prev).Seconds(), ReasonCondition, out)
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

// reindex rebuilds the rule indexes and every device's plan after a rule
// changed.
func (e *Evaluator) reindex(out *[]Transition) {
	e.fleet, e.byDevice, e.byTag = nil, map[string][]*rule{}, map[tagPair][]*rule{}
	for _, r := range e.rules {
		switch {
		case !r.Enabled:
		case r.Scope.Fleet:
			e.fleet = append(e.fleet, r)
		case r.Scope.DeviceID != "":
			e.byDevice[r.Scope.DeviceID] = append(e.byDevice[r.Scope.DeviceID], r)
		default:
			k := sortedKeys(r.Scope.Tags)[0]
			p := tagPair{k, r.Scope.Tags[k]}
			e.byTag[p] = append(e.byTag[p], r)
		}
	}
	e.plans = map[string]*plan{"": e.buildPlan(nil)}
	for _, d := range e.sortedDevices() {
		e.replan(d, out)
	}
}

// planFor finds the rules that watch a device through the indexes: fleet
// rules, rules naming it, and tag rules filed under one of its tags.
func (e *Evaluator) planFor(d *device) *plan {
	rs := append([]*rule(nil), e.fleet...)
	rs = append(rs, e.byDevice[d.id]...)
	for k, v := range d.tags {
		for _, r := range e.byTag[tagPair{k, v}] {
			if r.Scope.Matches(d.id, d.tags) {
				rs = append(rs, r)
			}
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	key := make([]byte, 0, 8*len(rs))
	for _, r := range rs {
		key = binary.BigEndian.AppendUint64(key, uint64(r.ID))
	}
	if p := e.plans[string(key)]; p != nil {
		return p
	}
	p := e.buildPlan(rs)
	e.plans[string(key)] = p
	return p
}

func (e *Evaluator) buildPlan(rs []*rule) *plan {
	p := &plan{rules: rs, metrics: map[string]*metricRules{}}
	for i, r := range rs {
		c := r.Condition
		switch {
		case c.Kind == Silence:
			p.silence = append(p.silence, int32(i))
		case c.Kind == Changed && r.pathKey != "":
			j := sort.Search(len(p.props), func(j int) bool { return p.props[j].key >= r.pathKey })
			if j == len(p.props) || p.props[j].key != r.pathKey {
				p.props = append(p.props, propGroup{})
				copy(p.props[j+1:], p.props[j:])
				p.props[j] = propGroup{key: r.pathKey, path: r.path}
			}
			p.props[j].rules = append(p.props[j].rules, int32(i))
		default:
			mr := p.metrics[c.Metric]
			if mr == nil {
				mr = &metricRules{}
				p.metrics[c.Metric] = mr
			}
			if c.Kind == Threshold {
				mr.threshold = append(mr.threshold, int32(i))
			} else {
				mr.changed = append(mr.changed, int32(i))
			}
		}
	}
	return p
}

// index finds a rule's position in the plan.
func (p *plan) index(id int64) (int32, bool) {
	i := sort.Search(len(p.rules), func(i int) bool { return p.rules[i].ID >= id })
	return int32(i), i < len(p.rules) && p.rules[i].ID == id
}

// replan moves a device to the plan of the rules that now watch it: tracks
// of rules still watching move along, the others end (ReasonOutOfScope), new
// silence rules start timing from the last message.
func (e *Evaluator) replan(d *device, out *[]Transition) {
	old, oldTracks := d.plan, d.tracks
	p := e.planFor(d)
	d.plan, d.tracks = p, nil
	for k, tr := range oldTracks {
		if tr == nil {
			continue
		}
		if i, ok := p.index(old.rules[k].ID); ok {
			tr.rule = p.rules[i]
			d.ensureTracks()[i] = tr
			continue
		}
		e.retire(tr, ReasonOutOfScope, out)
	}
	if !d.lastSeen.IsZero() {
		for _, i := range p.silence {
			if tr := e.trackFor(d, i); tr.index < 0 && !tr.open && !tr.suppressed {
				e.schedule(tr, d.lastSeen.Add(seconds(tr.rule.Condition.Seconds)))
			}
		}
	}
	for m := range d.lastNum {
		if mr := p.metrics[m]; mr == nil || len(mr.changed) == 0 {
			delete(d.lastNum, m)
		}
	}
	for key := range d.lastProp {
		if !p.watches(key) {
			delete(d.lastProp, key)
		}
	}
}

func (p *plan) watches(propKey string) bool {
	for _, g := range p.props {
		if g.key == propKey {
			return true
		}
	}
	return false
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

// advance moves time to now (never back) and fires the timers due.
func (e *Evaluator) advance(now time.Time, out *[]Transition) {
	if now = now.Round(0); now.After(e.now) {
		e.now = now
	}
	e.fire(out)
}

func (e *Evaluator) fire(out *[]Transition) {
	for len(e.timers) > 0 && !e.timers[0].at.After(e.now) {
		tr := heap.Pop(&e.timers).(*track)
		switch tr.rule.Condition.Kind {
		case Silence:
			d := tr.dev
			due := d.lastSeen.Add(seconds(tr.rule.Condition.Seconds))
			if due.After(tr.at) { // it spoke since the timer was set; due may still be past, and fires in its turn
				e.schedule(tr, due)
				continue
			}
			tr.num = float64(tr.rule.Condition.Seconds)
			e.raise(tr, due, tr.num, nil, out)
		case Threshold:
			at := tr.at
			tr.pending, tr.num = false, tr.pendingNum
			if tr.open {
				e.repeat(tr, at, tr.num, nil, out)
			} else {
				e.raise(tr, at, tr.num, nil, out)
			}
		}
	}
}

// signal wakes the caller's timer loop when the next deadline moved earlier
// than the one it sleeps towards.
func (e *Evaluator) signal() {
	if len(e.timers) == 0 || e.announcedOK && !e.timers[0].at.Before(e.announced) {
		return
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Evaluator) schedule(tr *track, at time.Time) {
	tr.at = at
	if tr.index >= 0 {
		heap.Fix(&e.timers, tr.index)
		return
	}
	heap.Push(&e.timers, tr)
}

func (e *Evaluator) unschedule(tr *track) {
	if tr.index >= 0 {
		heap.Remove(&e.timers, tr.index)
	}
}

// timerHeap orders tracks by deadline, then rule and device, so that
// transitions due at the same time come out in a stable order.
type timerHeap []*track

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.rule.ID != b.rule.ID {
		return a.rule.ID < b.rule.ID
	}
	return a.dev.id < b.dev.id
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	tr := x.(*track)
	tr.index = len(*h)
	*h = append(*h, tr)
}
func (h *timerHeap) Pop() any {
	old := *h
	tr := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	tr.index = -1
	return tr
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

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

// lookup walks a reported document along a property path.
func lookup(doc map[string]any, path []string) (any, bool) {
	var v any = doc
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// canonical is the JSON text of a value with numbers in one form, so that
// equal values compare equal whether they were decoded as json.Number or
// float64.
func canonical(v any) (string, error) {
	b, err := json.Marshal(normalize(v))
	return string(b), err
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return x.String()
		}
		return normalizeFloat(f)
	case float64:
		return normalizeFloat(x)
	case float32:
		return normalizeFloat(float64(x))
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	}
	return v
}

// normalizeFloat writes whole numbers as integers, as json.Number's do.
func normalizeFloat(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f)
	}
	return f
}

// decodeCanonical turns canonical JSON back into a JSON value.
func decodeCanonical(s string) any {
	if s == "" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

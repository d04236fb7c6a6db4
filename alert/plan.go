package alert

import (
	"encoding/binary"
	"sort"
)

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
